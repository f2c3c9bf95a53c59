#!/usr/bin/env python
"""What we want to know from one short loan of a GPU, measured in one run (benchmarks/gpu_check.sh).

Steps, each written to ``<out>/gpu_check.json`` as it finishes (a run cut short keeps what it
measured):

1. inference of ``poster_var`` at batch 256: fp32, bf16 autocast, bf16 compiled, with peak
   GPU memory;
2. training images/s at steady state through the training loop's own pieces (``Trainer``:
   its batches, forward, ELBO, backward, AdamW, the loss read every few steps), from the
   image files and from the decoded-once cache (``--data-cache``), each eager and compiled,
   with peak GPU memory and the synchronising CUDA calls per step (``torch.cuda``'s sync
   debug mode, after the timing);
3. (run by the shell script) a time-boxed full-size FER+ run and its evaluation.

``--dry-run`` runs the same steps tiny on the CPU (``poster_var_tiny``, small batches, a few
steps; fp32 in place of bf16, which must not run on these CPUs: they advertise AMX but fault
on it; ``torch.compile`` with its eager backend, which traces the same graph without
generating code), so the check is known to work before a GPU is lent.

example:
  python benchmarks/gpu_check.py --data-root ../shared/data/ferplus --out runs/gpu_check
  python benchmarks/gpu_check.py --dry-run --dataset synthetic --out runs/gpu_check_dry
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from bench_model import timed  # noqa: E402 - benchmarks/ is this script's folder

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="the same steps, tiny, on the CPU")
    p.add_argument("--dataset", choices=("ferplus", "synthetic"), default="ferplus", help="training data to time")
    p.add_argument("--data-root", default=str(REPO.parent / "shared" / "data" / "ferplus"), help="FER+ root folder")
    p.add_argument("--out", default="runs/gpu_check", help="folder of gpu_check.json and the data cache")
    p.add_argument("--workers", type=int, default=12, help="DataLoader workers of the image-file pipeline")
    p.add_argument("--seconds", type=float, default=5.0, help="timed seconds per measurement")
    p.add_argument("--image-size", type=int, default=112, help="network input side")
    return p


def plan_for(args: argparse.Namespace) -> dict:
    """Sizes of every step: full on a GPU, tiny in the dry run."""
    dry = args.dry_run
    return {"model": "poster_var_tiny" if dry else "poster_var", "infer_batch": 8 if dry else 256,
            "train_batch": 8 if dry else 256, "dataset": args.dataset, "data_root": args.data_root,
            "image_size": args.image_size, "workers": 0 if dry else args.workers,
            "train_size": 48 if dry else None, "valid_size": 8 if dry else None,
            "warmup_steps": 2 if dry else 10, "min_steps": 3 if dry else 20, "sync_steps": 4 if dry else 16,
            "backend": "eager" if dry else "inductor", "seconds": 0.5 if dry else args.seconds}


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mb(device) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def inference(plan: dict, device) -> list[dict]:
    """Eval images/s of the network: fp32, bf16, bf16 compiled."""
    import torch

    from bayes_fer import create_model
    from bayes_fer.training.builder import network_size

    net = create_model(plan["model"], num_classes=8, **network_size(plan["image_size"])).to(device).eval()
    x = torch.randn(plan["infer_batch"], 3, plan["image_size"], plan["image_size"], device=device)
    rows = []
    for name, bf16, compiled in (("fp32", False, False), ("bf16", True, False), ("bf16 compiled", True, True)):
        use_bf16 = bf16 and device.type == "cuda"  # never on the CPU: see the module docstring
        # The bound forward: PyroModule.__call__ enters Pyro's parameter context, which dynamo cannot trace.
        fwd = torch.compile(net.forward, dynamic=False, backend=plan["backend"]) if compiled else net
        t_start = time.perf_counter()
        _reset_peak(device)
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            dt = timed(lambda: fwd(x), plan["seconds"], lambda: _sync(device))
        rows.append({"step": f"inference {name}", "batch": len(x), "images_per_s": len(x) / dt, "bf16": use_bf16,
                     "compiled": compiled, "peak_gpu_mb": _peak_mb(device), "wall_s": time.perf_counter() - t_start})
        print(f"  {rows[-1]['step']:<28} {len(x) / dt:10.1f} img/s", flush=True)
    return rows


def _steps(trainer, device) -> Iterator[int]:
    """Training steps as the loop takes them, epoch after epoch; yields each step's faces."""
    import torch

    from bayes_fer.training.tally import LossTally

    tally = LossTally(0.0, 0, device=device)
    epoch = 0
    while True:
        for batch in trainer.batches.train(epoch):
            batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
            faces = batch["image"].shape[0]
            if tally.add(trainer._train_step(batch), trainer.step, faces):
                tally.read()
            yield faces
        epoch += 1


def syncs_per_step(step: Callable[[], int], steps: int, device) -> float | None:
    """Synchronising CUDA calls per training step (None on the CPU, where nothing is asynchronous)."""
    import torch

    if device.type != "cuda":
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(steps):
                step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught) / steps


def training(plan: dict, device, cached: bool, compiled: bool, cache_dir: Path) -> dict:
    """Images/s of training at steady state, its peak GPU memory and its host syncs per step."""
    import torch

    from bayes_fer.training import TrainConfig, Trainer

    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(dataset=plan["dataset"], data_root=plan["data_root"], model=plan["model"], device=str(device),
                          bf16=device.type == "cuda", compile=compiled and plan["backend"] == "inductor",
                          batch_size=plan["train_batch"], workers=plan["workers"], epochs=1, out=out,
                          train_size=plan["train_size"], valid_size=plan["valid_size"], kl_weight=0.01, lr=5e-4,
                          lr_schedule="cosine", warmup_steps=10, image_size=plan["image_size"],
                          data_cache=str(cache_dir) if cached else None)
        trainer = Trainer(cfg)
        if compiled and plan["backend"] != "inductor":  # the guide owns the network and runs it
            trainer.guide.features_fn = torch.compile(trainer.guide.net.forward_features, backend=plan["backend"])
        trainer.guide.train()
        steps = _steps(trainer, device)
        for _ in range(plan["warmup_steps"]):  # compilation, cuDNN autotuning, worker start-up
            next(steps)
        _reset_peak(device)
        _sync(device)
        n, seen, t0 = 0, 0, time.perf_counter()
        while n < plan["min_steps"] or time.perf_counter() - t0 < plan["seconds"]:
            seen += next(steps)
            n += 1
        _sync(device)
        rate = seen / (time.perf_counter() - t0)
        syncs = syncs_per_step(lambda: next(steps), plan["sync_steps"], device)
        steps.close()
    row = {"step": f"training {'cached' if cached else 'files'}{' compiled' if compiled else ''}",
           "batch": plan["train_batch"], "images_per_s": rate, "timed_steps": n, "cached": cached, "compiled": compiled,
           "peak_gpu_mb": _peak_mb(device), "syncs_per_step": syncs, "wall_s": time.perf_counter() - t_start}
    extra = "" if row["peak_gpu_mb"] is None else f"  peak {row['peak_gpu_mb']:.0f} MB  {syncs:.2f} syncs/step"
    print(f"  {row['step']:<28} {rate:10.1f} img/s{extra}", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from bayes_fer.training.device import resolve_device

    try:
        device = resolve_device("cpu" if args.dry_run else "cuda")
    except ValueError as e:
        print(f"error: {e}; use --dry-run to check the steps on the CPU", file=sys.stderr)
        return 2
    if args.dataset == "ferplus" and not Path(args.data_root).is_dir():
        print(f"error: FER+ root {args.data_root} does not exist; pass --data-root or --dataset synthetic",
              file=sys.stderr)
        return 2
    if args.dry_run:
        torch.set_num_threads(2)
    plan = plan_for(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"dry_run": args.dry_run, "device": str(device), "torch": torch.__version__,
              "python": platform.python_version(), "plan": plan, "rows": [],
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}

    def save() -> None:
        (out / "gpu_check.json").write_text(json.dumps(report, indent=2))

    print(f"gpu_check on {report['gpu'] or 'the CPU (dry run)'}: {plan['model']} at {plan['image_size']}", flush=True)
    report["rows"] += inference(plan, device)
    save()
    # Eager first: if compilation outlasts the time box, the eager figures are already saved.
    for compiled in (False, True):
        for cached in (False, True):
            report["rows"].append(training(plan, device, cached, compiled, out / "data-cache"))
            save()
    return 0


if __name__ == "__main__":
    sys.exit(main())

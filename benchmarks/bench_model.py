#!/usr/bin/env python
"""Speed and memory of the POSTER networks, the VICH head and posterior-predictive sampling.

Measures, for one model: eval images/s at several batch sizes (inference mode), seconds per
training step (forward + backward + AdamW), peak resident memory, the VI head's cost against
a deterministic head, the predictive cost against the number of Monte-Carlo draws, and with
``--train-data`` the real data pipeline alone (decode + augment) and training on it.

examples:
  python benchmarks/bench_model.py --model poster_var --threads 2 --batches 1 8 32 --out bench.json
  python benchmarks/bench_model.py --model poster_var --device cuda --bf16 --batches 1 32 256 --train-batch 48 \
      --train-data ferplus --data-root ../shared/data/ferplus --workers 8 --head-overhead --predictive 1 1000
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="poster_var", help="registered model name")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--input-size", type=int, default=224, help="input side (224 is subsampled to the native 112)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32], help="eval batch sizes")
    p.add_argument("--train-batch", type=int, default=8, help="training-step batch size (0 skips)")
    p.add_argument("--seconds", type=float, default=10.0, help="timed seconds per measurement")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (on CPU: guarded against AMX faults)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network")
    p.add_argument("--head-overhead", action="store_true", help="time the VI head against a linear head")
    p.add_argument("--predictive", type=int, nargs="*", default=[], help="predictive cost for these S (e.g. 1 1000)")
    # Listed here rather than imported: bayes_fer loads torch, which must wait for the bf16 guard in main().
    p.add_argument("--train-data", choices=["synthetic", "ferplus", "rafdb", "affectnet7", "affectnet8", "fer2013"],
                   help="also time the training data pipeline alone and training on it (batch --train-batch)")
    p.add_argument("--data-root", help="folder of --train-data in its official layout (not needed for synthetic)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of --train-data")
    p.add_argument("--out", help="write the results as JSON here")
    return p


def timed(fn, seconds: float, sync) -> float:
    """Mean seconds per call over at least ``seconds`` (after two warm-up calls)."""
    fn(), fn()
    sync()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        sync()
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and n >= 3:
            return elapsed / n


def pipeline_rate(loader, seconds: float, step=None) -> float:
    """Images/s drawn from ``loader`` (and fed to ``step(images, labels)``) over ``seconds``, after 2 batches."""
    n, t0, warm = 0, None, 0
    while True:
        for batch in loader:
            if step is not None:
                step(batch["image"], batch["label"])
            if warm < 2:
                warm += 1
                t0 = time.perf_counter() if warm == 2 else t0
                continue
            n += len(batch["label"])
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                return n / elapsed


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.bf16 and not args.device.startswith("cuda"):  # cpu, or auto that may land on the CPU
        # These CPUs advertise AMX-BF16 but fault on it: cap oneDNN at AVX512-BF16 before torch loads.
        os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    import torch

    from bayes_fer import create_model
    from bayes_fer.predictive import Predictor
    from bayes_fer.training.loop import resolve_device
    from guides import NormalGuide

    torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)  # on CUDA it also turns on cuDNN autotuning, as training does
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)
    data = None
    if args.train_data:
        from bayes_fer.data import load_dataset

        # Loaded first: the network needs the data set's class count (FER+ and AffectNet-8 have 8).
        data = load_dataset(args.train_data, args.data_root, "train", image_size=112)
    net = create_model(args.model, num_classes=len(data.class_names) if data else 7).to(device).eval()
    # The bound forward, not the module: PyroModule.__call__ enters Pyro's parameter context,
    # which dynamo cannot trace, and it would then compile each submodule on its own. Static
    # shapes: one graph per batch size.
    fwd = torch.compile(net.forward, dynamic=False) if args.compile else net
    results: dict = {"model": args.model, "device": str(device), "threads": args.threads, "input_size": args.input_size,
                     "bf16": args.bf16, "compile": args.compile, "torch": torch.__version__, "cpu": platform.processor()
                     or platform.machine(), "eval_images_per_s": {}}
    if device.type == "cuda":
        results["gpu"] = torch.cuda.get_device_name(device)
    rows = []
    for bs in args.batches:
        x = torch.randn(bs, 3, args.input_size, args.input_size, device=device)
        with torch.inference_mode(), amp:
            dt = timed(lambda: fwd(x), args.seconds, sync)
        results["eval_images_per_s"][str(bs)] = bs / dt
        rows.append((f"eval batch {bs}", f"{bs / dt:.1f} img/s", f"{1000 * dt / bs:.2f} ms/img"))
    results["peak_rss_mb_eval"] = peak_rss_mb()
    if args.head_overhead:
        feats = torch.randn(max(args.batches), net.config.embed_dim, device=device)
        linear = torch.nn.Linear(net.config.embed_dim, net.num_classes).to(device)
        with torch.inference_mode():
            t_vi = timed(lambda: net.head(feats), args.seconds / 4, sync)
            t_lin = timed(lambda: linear(feats), args.seconds / 4, sync)
        results["head_ms_per_image"] = {"vich": 1000 * t_vi / len(feats), "linear": 1000 * t_lin / len(feats)}
        rows.append(("VICH head vs linear", f"{1000 * t_vi / len(feats):.5f} ms/img", f"{1000 * t_lin / len(feats):.5f} ms/img"))
    if args.predictive:
        classes = [f"c{k}" for k in range(net.num_classes)]
        pred = Predictor(net, NormalGuide(net.num_classes), classes, device=device)
        x = torch.randn(max(args.batches), 3, args.input_size, args.input_size, device=device)
        base = None
        results["predictive_s_per_batch"] = {}
        for s in args.predictive:
            dt = timed(lambda: pred.predict_batch(x, num_samples=s), args.seconds, sync)
            base = base or dt
            results["predictive_s_per_batch"][str(s)] = dt
            rows.append((f"predictive S={s}, batch {len(x)}", f"{dt:.3f} s", f"{dt / base:.3f}x S={args.predictive[0]}"))
    if args.train_batch:
        net.train()
        opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-5)
        x = torch.randn(args.train_batch, 3, args.input_size, args.input_size, device=device)
        y = torch.randint(0, net.num_classes, (args.train_batch,), device=device)

        def step(images, labels):
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            with amp:
                loc, _ = fwd(images)
            torch.nn.functional.cross_entropy(loc.float(), labels).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            sync()

        dt = timed(lambda: step(x, y), args.seconds, sync)
        results["train_step_s"] = dt
        results["peak_rss_mb_train"] = peak_rss_mb()
        rows.append((f"train step batch {args.train_batch}", f"{dt:.3f} s", f"{args.train_batch / dt:.1f} img/s"))
        if data is not None:
            from torch.utils.data import DataLoader

            loader = DataLoader(data, batch_size=args.train_batch, shuffle=True, num_workers=args.workers,
                                drop_last=True, persistent_workers=args.workers > 0, pin_memory=device.type == "cuda")
            data_rate = pipeline_rate(loader, args.seconds)
            train_rate = pipeline_rate(loader, args.seconds, step)
            results["data_pipeline"] = {"dataset": args.train_data, "workers": args.workers,
                                        "images_per_s": data_rate, "train_images_per_s": train_rate}
            label = f"{args.train_data}, {args.workers} workers"
            rows.append((f"data pipeline ({label})", f"{data_rate:.0f} img/s", "decode + augment"))
            rows.append((f"training on {args.train_data}, batch {args.train_batch}", f"{train_rate:.1f} img/s",
                         "data + fwd + bwd + AdamW"))
    if device.type == "cuda":
        results["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    rows.append(("peak RSS", f"{peak_rss_mb():.0f} MB", ""))
    where = results.get("gpu", f"{args.threads} threads")
    print(f"{args.model} on {device} ({where}), input {args.input_size}, bf16={args.bf16}, compile={args.compile}")
    for r in rows:
        print(f"  {r[0]:<42} {r[1]:>16} {r[2]:>24}")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

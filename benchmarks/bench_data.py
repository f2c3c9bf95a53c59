"""Throughput of training-data loading and augmentation, and learnability of the synthetic faces.

Measures, for each dataset, a training DataLoader (train split, ``train_transform``,
shuffled batches, ``--workers`` processes) after a warm-up, plus the single-process
generation rate of the synthetic faces without augmentation. With ``--learn-images N``
it also trains ``poster_var_tiny`` with plain cross-entropy and AdamW on N synthetic
training faces and reports held-out accuracy (label = argmax of the true mixture) and
the mean KL(true mixture || predicted distribution). Prints a table and writes JSON.

Example:
    .venv/bin/python benchmarks/bench_data.py --workers 2 --out runs/bench_data.json
    .venv/bin/python benchmarks/bench_data.py --datasets --generate 0 --learn-images 16000
    .venv/bin/python benchmarks/bench_data.py --datasets ferplus --generate 0 --cached   # PNG against decoded once
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from bayes_fer.data import load_dataset

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class BenchResult:
    """One measured configuration."""

    dataset: str  # dataset name (with what was measured)
    workers: int  # DataLoader worker processes (0: in the main process)
    images: int  # images timed after the warm-up
    seconds: float  # wall time of the timed part
    images_per_s: float  # images / seconds


def time_loader(ds, *, workers: int, batch_size: int, batches: int, warmup: int, seed: int) -> tuple[int, float]:
    """Images and seconds for ``batches`` batches after ``warmup`` batches."""
    loader = DataLoader(
        ds, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True,
        generator=torch.Generator().manual_seed(seed), persistent_workers=False,
    )
    return _time_batches(iter(loader), batches, warmup)


def _time_batches(it, batches: int, warmup: int) -> tuple[int, float]:
    """Images and seconds for ``batches`` batches of ``it`` after ``warmup`` batches."""
    for _ in range(warmup):
        next(it)
    start = time.perf_counter()
    n = 0
    for _ in range(batches):
        n += len(next(it)["label"])
    return n, time.perf_counter() - start


def time_cached(ds, *, threads: int, batch_size: int, batches: int, warmup: int, seed: int, cache_dir: Path,
                image_size: int) -> tuple[int, float]:
    """Images and seconds of the decoded-once pipeline: batches gathered from the memory-mapped
    cache and augmented batched on the CPU with ``threads`` threads, in this process."""
    from torch.utils.data import BatchSampler, RandomSampler

    from bayes_fer.data.batch_augment import BatchAugment
    from bayes_fer.data.cache import open_cache
    from bayes_fer.data.cached_loader import CachedLoader

    cache = open_cache(ds, cache_dir, image_size, workers=threads)
    torch.set_num_threads(threads)
    sampler = RandomSampler(ds, generator=torch.Generator().manual_seed(seed))
    loader = CachedLoader(cache, BatchSampler(sampler, batch_size, True), torch.device("cpu"), BatchAugment(image_size))
    n, seconds = _time_batches(iter(loader), batches, warmup)
    torch.set_num_threads(1)
    return n, seconds


def time_generation(count: int, image_size: int, seed: int) -> tuple[int, float]:
    """Synthetic faces drawn in this process, without augmentation."""
    ds = load_dataset("synthetic", split="train", size=count, seed=seed, image_size=image_size)
    ds.load_image(0)
    start = time.perf_counter()
    for i in range(count):
        ds.load_image(i)
    return count, time.perf_counter() - start


def learnability(images: int, *, test_size: int, lr: float, batch_size: int, seed: int) -> dict:
    """Train poster_var_tiny with cross-entropy on ``images`` synthetic faces; score held-out faces."""
    from bayes_fer import create_model

    torch.manual_seed(seed)
    train = load_dataset("synthetic", split="train", seed=seed)
    test = load_dataset("synthetic", split="test", size=test_size, seed=seed)
    model = create_model("poster_var_tiny", num_classes=train.num_classes)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4)
    loader = DataLoader(train, batch_size=batch_size, shuffle=True, num_workers=1, drop_last=True,
                        persistent_workers=True, generator=torch.Generator().manual_seed(seed))
    model.train()
    seen, start = 0, time.perf_counter()
    while seen < images:
        for batch in loader:
            loss = F.cross_entropy(model(batch["image"])[0], batch["label"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(batch["label"])
            if seen % 3200 < batch_size:
                print(f"  learnability: {seen} faces, loss {loss.item():.3f}", file=sys.stderr, flush=True)
            if seen >= images:
                break
    seconds = time.perf_counter() - start
    model.eval()
    correct, kl = 0, 0.0
    with torch.no_grad():
        for batch in DataLoader(test, batch_size=100):
            logp = F.log_softmax(model(batch["image"])[0], dim=-1)
            m = batch["mixture"]
            correct += int((logp.argmax(-1) == batch["label"]).sum())
            kl += float((m * (m.clamp_min(1e-12).log() - logp)).sum())
    return {"train_images": seen, "train_seconds": seconds, "train_images_per_s": seen / seconds,
            "test_faces": len(test), "accuracy": correct / len(test), "mean_kl": kl / len(test)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="example: .venv/bin/python benchmarks/bench_data.py --workers 2 --out runs/bench_data.json",
    )
    parser.add_argument("--datasets", nargs="*", default=["synthetic", "ferplus"], choices=["synthetic", "ferplus"],
                        help="datasets to measure (default: both; ferplus is skipped when its root is absent; "
                             "none: only --generate / --learn-images)")
    parser.add_argument("--ferplus-root", type=Path, default=REPO.parent / "shared" / "data" / "ferplus",
                        help="FER+ root in the official FERPlus layout (default: ../shared/data/ferplus)")
    parser.add_argument("--workers", type=int, nargs="+", default=[2],
                        help="DataLoader worker counts to measure, e.g. --workers 0 1 2 (default: 2)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch (default: 64)")
    parser.add_argument("--batches", type=int, default=40, help="timed batches per configuration (default: 40)")
    parser.add_argument("--warmup", type=int, default=4, help="untimed batches first, to start the workers (default: 4)")
    parser.add_argument("--generate", type=int, default=1000,
                        help="synthetic faces drawn to time generation alone, 0 to skip (default: 1000)")
    parser.add_argument("--image-size", type=int, default=112, help="network input side (default: 112)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffles and the synthetic faces (default: 0)")
    parser.add_argument("--learn-images", type=int, default=0,
                        help="train poster_var_tiny on this many synthetic faces and report held-out accuracy and "
                             "KL to the true mixtures (default: 0, skip)")
    parser.add_argument("--learn-lr", type=float, default=1e-3, help="AdamW learning rate of --learn-images")
    parser.add_argument("--learn-test", type=int, default=1000, help="held-out synthetic test faces (default: 1000)")
    parser.add_argument("--cached", action="store_true",
                        help="also time the decoded-once pipeline (memory-mapped cache, batched augmentation on "
                             "max(--workers) CPU threads in one process)")
    parser.add_argument("--cache-dir", type=Path, default=REPO / "runs" / "data-cache",
                        help="folder of the decoded-once data sets (default: runs/data-cache)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON to this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    results: list[BenchResult] = []
    learned = None
    if args.learn_images > 0:
        torch.set_num_threads(min(2, os.cpu_count() or 1))
        learned = learnability(args.learn_images, test_size=args.learn_test, lr=args.learn_lr,
                               batch_size=32, seed=args.seed)
    torch.set_num_threads(1)  # one core per loader process; the parallelism is the workers
    if "synthetic" in args.datasets and args.generate > 0:
        n, s = time_generation(args.generate, args.image_size, args.seed)
        results.append(BenchResult("synthetic (generation only, 1 core)", 0, n, s, n / s))
    for name in args.datasets:
        if name == "ferplus":
            if not args.ferplus_root.is_dir():
                print(f"skipping ferplus: {args.ferplus_root} does not exist (set --ferplus-root)", file=sys.stderr)
                continue
            ds = load_dataset("ferplus", args.ferplus_root, "train", image_size=args.image_size, seed=args.seed)
        else:
            size = max(args.batch_size * (args.batches + args.warmup), 1024)
            ds = load_dataset("synthetic", split="train", size=size, image_size=args.image_size, seed=args.seed)
        for workers in args.workers:
            n, s = time_loader(ds, workers=workers, batch_size=args.batch_size, batches=args.batches,
                               warmup=args.warmup, seed=args.seed)
            results.append(BenchResult(f"{name} (train: load + augment)", workers, n, s, n / s))
        if args.cached:
            threads = max(args.workers)
            n, s = time_cached(ds, threads=threads, batch_size=args.batch_size, batches=args.batches,
                               warmup=args.warmup, seed=args.seed, cache_dir=args.cache_dir, image_size=args.image_size)
            results.append(BenchResult(f"{name} (cached, {threads} threads)", 0, n, s, n / s))
    print(f"{'dataset':<40} {'workers':>7} {'images':>7} {'seconds':>8} {'images/s':>9}")
    for r in results:
        print(f"{r.dataset:<40} {r.workers:>7} {r.images:>7} {r.seconds:>8.2f} {r.images_per_s:>9.0f}")
    if learned is not None:
        print(f"poster_var_tiny, cross-entropy on {learned['train_images']} synthetic faces "
              f"({learned['train_seconds']:.0f} s, {learned['train_images_per_s']:.0f} images/s): held-out accuracy "
              f"{learned['accuracy']:.3f}, mean KL(true mixture || prediction) {learned['mean_kl']:.3f} "
              f"on {learned['test_faces']} faces")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                "image_size": args.image_size, "batch_size": args.batch_size}
        payload = {"meta": meta, "results": [asdict(r) for r in results], "learnability": learned}
        args.out.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

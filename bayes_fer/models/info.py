"""Parameter and FLOP counts of the registered models: ``python -m bayes_fer.models.info``."""
from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bayes_fer.models.poster import NATIVE_SIZE, PosterNet
from bayes_fer.models.registry import count_parameters, create_model, list_models


@contextlib.contextmanager
def direct_kernels(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` with PyTorch's own kernels in place of the CPU ones (``fast`` layers)."""
    layers = [m for m in model.modules() if getattr(m, "fast", None) is True]
    for m in layers:
        m.fast = False
    try:
        yield model
    finally:
        for m in layers:
            m.fast = True


def count_flops(model: PosterNet, size: int = NATIVE_SIZE) -> int:
    """FLOPs (2 x multiply-accumulates) of one eval forward pass on one image.

    These are the architecture's FLOPs, as papers count them: Winograd layers do fewer
    multiplications on the CPU, so they are counted as the convolutions they compute.
    """
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), direct_kernels(model), counter:
        model.eval()(torch.zeros(1, 3, size, size))
    return counter.get_total_flops()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print parameters and FLOPs per registered model.")
    parser.add_argument("--num-classes", type=int, default=7, help="number of expression classes K")
    args = parser.parse_args(argv)
    print(f"| model | parameters | trainable | GFLOPs / image |\n|---|---:|---:|---:|")
    for name in list_models():
        model = create_model(name, num_classes=args.num_classes)
        total, trainable = count_parameters(model)
        print(f"| {name} | {total:,} | {trainable:,} | {count_flops(model) / 1e9:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Export a model to ONNX: ``python -m bayes_fer.export --onnx model.onnx [--checkpoint CKPT]``.

The graph maps normalized faces ``images`` (B, 3, S, S) to the mean-field guide's posterior
over the latent intensities: ``loc`` (B, K) and ``log_var`` (B, K), clamped as the guide
clamps it; the batch axis is dynamic. The model's metadata holds what turns these into
answers without torch: ``class_names``, ``log_prediction_rates`` (the class base rates
predictions are made under: probabilities are E[softmax(z + log_prediction_rates)],
z ~ Normal(loc, exp(log_var))), ``image_size``, ``mean`` and ``std`` (input normalization,
after scaling pixels to [0, 1]), each as JSON. Needs ``pip install "bayes-fer[export]"``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

from bayes_fer.data.transforms import MEAN, STD
from bayes_fer.vich import LOG_VAR_MAX, LOG_VAR_MIN

EXAMPLES = """examples:
  python -m bayes_fer.export --onnx ferplus.onnx                              # the packaged FER+ model
  python -m bayes_fer.export --checkpoint runs/ferplus/best.pt --onnx model.onnx
"""


class PosteriorHead(nn.Module):
    """The network with the guide's clamp: images -> (loc, log_var)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, log_var = self.net.head(self.net.forward_features(images))
        return loc, log_var.clamp(LOG_VAR_MIN, LOG_VAR_MAX)


def export_onnx(predictor, path: str | Path, opset: int = 18) -> Path:
    """Write ``predictor``'s network as ONNX with its metadata; returns the path.

    Raises:
        ValueError: the guide is not the mean-field Normal one (its posterior is not (loc, log_var)).
    """
    from guides import NormalGuide

    if not isinstance(predictor.guide, NormalGuide):
        raise ValueError(f"only the mean-field Normal guide exports as (loc, log_var); this model has "
                         f"{type(predictor.guide).__name__}")
    import onnx

    head = PosteriorHead(predictor.net.cpu()).eval()
    size = predictor.image_size
    example = torch.zeros(2, 3, size, size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(head, (example,), str(path), input_names=["images"], output_names=["loc", "log_var"],
                          dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1, max=4096)}},
                          opset_version=opset, dynamo=True, external_data=False)
    model = onnx.load(str(path))
    meta = {
        "class_names": json.dumps(list(predictor.class_names)),
        "log_prediction_rates": json.dumps([float(v) for v in predictor.model.log_prediction_rates.cpu()]),
        "image_size": json.dumps(size),
        "mean": json.dumps(list(MEAN)),
        "std": json.dumps(list(STD)),
        "dataset": json.dumps(predictor.data_config.get("dataset")),
    }
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    predictor.net.to(predictor.device)
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bayes_fer.export", description=__doc__.split("\n\n")[0],
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--onnx", required=True, help="ONNX file to write")
    p.add_argument("--checkpoint", help="svi_train.py checkpoint (default: the FER+ model shipped inside the package)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset version (default: %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from bayes_fer.predictive import Predictor

    try:
        predictor = (Predictor.pretrained(device="cpu") if args.checkpoint is None
                     else Predictor.from_checkpoint(args.checkpoint, "cpu"))
        path = export_onnx(predictor, args.onnx, args.opset)
    except (FileNotFoundError, ValueError, RuntimeError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MB): images (B, 3, {predictor.image_size}, "
          f"{predictor.image_size}) -> loc, log_var (B, {len(predictor.class_names)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

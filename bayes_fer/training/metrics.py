"""Validation metrics of a training run: accuracy by the paper's rule, balanced accuracy, NLL, ECE."""
from __future__ import annotations

import sys

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from bayes_fer.vich import VICHModel
from guides import AmortizedGuide


def progress(iterable, **kwargs) -> tqdm:
    """A progress bar; redirected to a log file it updates every 30 s instead of many times a second."""
    interactive = sys.stderr.isatty()
    return tqdm(iterable, mininterval=0.1 if interactive else 30.0, **kwargs)


@torch.no_grad()
def evaluate(guide: AmortizedGuide, loader: DataLoader, device: torch.device, desc: str = "eval",
             model: VICHModel | None = None) -> dict:
    """Accuracy by the paper's rule (argmax of the intensity mean), balanced accuracy, NLL and
    ECE of softmax(mean), under the model's prediction prior (the training base rates)."""
    guide.eval()
    probs, labels = [], []
    for batch in progress(loader, desc=desc, leave=False, unit="batch"):
        out = guide.encode(batch["image"].to(device, non_blocking=True))
        loc = guide.mean(out).float()
        logits = model.predictive_logits(loc) if model is not None else loc
        probs.append(logits.softmax(-1).cpu())
        labels.append(batch["label"])
    p, y = torch.cat(probs), torch.cat(labels)
    return {
        "accuracy": (p.argmax(-1) == y).float().mean().item(),
        "balanced_accuracy": _balanced_accuracy(p, y),
        "nll": -p.clamp_min(1e-12).log().gather(1, y[:, None]).mean().item(),
        "ece": expected_calibration_error(p, y),
    }


def _balanced_accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    from evaluation.metrics import balanced_accuracy

    return balanced_accuracy(probs.double().numpy(), labels.numpy())


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    from evaluation.calibration_error import ece

    return float(ece(probs.double().numpy(), labels.numpy(), num_bins=bins))

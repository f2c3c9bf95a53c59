"""SVI training of a POSTER network with the VICH head: the ELBO as a differentiable loss."""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pyro
import torch
from pyro.infer import TraceMeanField_ELBO
from torch.utils.data import DataLoader, Dataset, RandomSampler
from tqdm.auto import tqdm

from bayes_fer import checkpoint as ckpt_io
from bayes_fer.models import PosterNet
from bayes_fer.training.builder import build_network, build_vich
from bayes_fer.training.config import LR_SCHEDULES, TrainConfig, preset
from bayes_fer.training.state import get_rng_state, set_rng_state
from bayes_fer.vich import CLASS_PRIORS, LIKELIHOODS, HeadOutput, VICHModel
from guides import AmortizedGuide


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name} was asked for but CUDA is not available; use --device cpu or auto")
        torch.backends.cudnn.benchmark = True  # training batches have one shape: let cuDNN pick its fastest kernels
    return device


def head_output(net: PosterNet, images: torch.Tensor, bf16: bool = False, features_fn=None) -> HeadOutput:
    """Run the network once: features under optional bf16 autocast, the head in fp32."""
    fn = features_fn or net.forward_features
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16 and images.is_cuda):
        features = fn(images)
    features = features.float()
    loc, log_var = net.head(features)
    return HeadOutput(loc, log_var, features)


def progress(iterable, **kwargs) -> tqdm:
    """A progress bar; redirected to a log file it updates every 30 s instead of many times a second."""
    interactive = sys.stderr.isatty()
    return tqdm(iterable, mininterval=0.1 if interactive else 30.0, **kwargs)


def elbo_loss(
    model: VICHModel,
    guide: AmortizedGuide,
    out: HeadOutput,
    batch: dict,
    dataset_size: int,
    elbo: TraceMeanField_ELBO | None = None,
) -> torch.Tensor:
    """Negative ELBO per datum: mean over the batch of CE(sampled z) + beta * KL.

    The plate scales the minibatch's log-densities by N / B, so dividing by N gives the
    per-datum value whatever the batch size.
    """
    if model.kl_weight != guide.kl_weight:
        raise ValueError(f"model and guide disagree on the KL weight ({model.kl_weight} against {guide.kl_weight}); "
                         "build both with training.builder.build_vich")
    elbo = elbo or TraceMeanField_ELBO()
    args = (out, batch["label"], batch.get("target"), batch["index"], dataset_size, batch.get("votes"))
    return elbo.differentiable_loss(model, guide, *args) / dataset_size


@torch.no_grad()
def evaluate(net: PosterNet, guide: AmortizedGuide, loader: DataLoader, device: torch.device, desc: str = "eval",
             model: VICHModel | None = None) -> dict:
    """Accuracy by the paper's rule (argmax of the intensity mean), balanced accuracy, NLL and
    ECE of softmax(mean), under the model's prediction prior (the training base rates)."""
    net.eval()
    probs, labels = [], []
    for batch in progress(loader, desc=desc, leave=False, unit="batch"):
        out = head_output(net, batch["image"].to(device, non_blocking=True))
        loc = guide.mean(out).float()
        logits = model.predictive_logits(loc) if model is not None else loc
        probs.append(logits.softmax(-1).cpu())
        labels.append(batch["label"])
    p, y = torch.cat(probs), torch.cat(labels)
    return {
        "accuracy": (p.argmax(-1) == y).float().mean().item(),
        "balanced_accuracy": balanced_accuracy(p.argmax(-1), y, p.shape[1]),
        "nll": -p.clamp_min(1e-12).log().gather(1, y[:, None]).mean().item(),
        "ece": expected_calibration_error(p, y),
    }


def balanced_accuracy(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """Mean recall over the classes present in ``labels``."""
    recalls = [(pred[labels == k] == k).float().mean().item() for k in range(num_classes) if (labels == k).any()]
    return float(sum(recalls) / max(len(recalls), 1))


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    from evaluation.calibration_error import ece

    return float(ece(probs.double().numpy(), labels.numpy(), num_bins=bins))


class Trainer:
    """Owns one run: data, network, model, guide, optimizer, schedules, logs and checkpoints."""

    def __init__(self, config: TrainConfig, resume: bool = False) -> None:
        self.config = config
        self.out = Path(config.out)
        self.device = resolve_device(config.device)
        from bayes_fer.data import AUGMENTATIONS, load_dataset, train_transform  # noqa: PLC0415 - light imports

        if config.augment not in AUGMENTATIONS:
            raise ValueError(f"unknown augment {config.augment!r}; choose one of {', '.join(AUGMENTATIONS)}")
        if config.likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {config.likelihood!r}; choose one of {', '.join(LIKELIHOODS)}")
        if config.class_prior not in CLASS_PRIORS:
            raise ValueError(f"unknown class_prior {config.class_prior!r}; choose {' or '.join(CLASS_PRIORS)}")
        if config.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr_schedule {config.lr_schedule!r}; choose {' or '.join(LR_SCHEDULES)}")
        augment = train_transform(config.image_size, **AUGMENTATIONS[config.augment])
        kw = dict(root=config.data_root, image_size=config.image_size, label_mode=config.label_mode, seed=config.seed)
        self.train_set = load_dataset(config.dataset, split="train", size=config.train_size, transform=augment, **kw)
        try:
            self.valid_set = load_dataset(config.dataset, split="valid", size=config.valid_size, **kw)
        except (FileNotFoundError, ValueError):
            # RAF-DB and AffectNet ship no validation split: like the paper, validate on test.
            print(f"{config.dataset}: no validation split, validating on the test split")
            self.valid_set = load_dataset(config.dataset, split="test", size=config.valid_size, **kw)
        self.class_names = tuple(self.train_set.class_names)
        self.net = build_network(config, len(self.class_names), load_weights=not resume).to(self.device)
        self.model, self.guide = build_vich(config, self.net, self._class_counts())
        self.model.to(self.device)
        self.guide.to(self.device)
        if config.train_head_only:
            for name, p in self.net.named_parameters():
                p.requires_grad_(name.startswith("head."))
        modules = (self.net, self.model, self.guide)
        params = [p for m in modules for p in m.parameters() if p.requires_grad]
        self.params = params
        self._validated = False  # Pyro's argument checks have run on a step of this run
        fused = self.device.type == "cuda"
        self.optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused or None)
        self.epoch, self.step, self.best = 0, 0, -math.inf
        # Stepped per step (warm-up, or warm-up and cosine annealing) and per epoch (the paper's decay).
        self.warmup, self.decay = self._schedules()
        self.features_fn = torch.compile(self.net.forward_features) if config.compile else None
        self.elbo = TraceMeanField_ELBO()
        if resume:
            self._load(self.out / "last.pt")

    def _class_counts(self) -> torch.Tensor:
        """Training faces per class (or annotator votes per class, for the vote likelihoods)."""
        K = len(self.class_names)
        votes = getattr(self.train_set, "votes", None)
        if votes is None:
            votes = getattr(self.train_set, "arrays", {}).get("votes")
        if self.config.likelihood != "categorical" and votes is not None:
            return torch.as_tensor(np.asarray(votes, dtype=np.float64)[:, :K].sum(0))
        return torch.as_tensor(np.bincount(self.train_set.labels, minlength=K), dtype=torch.float64)

    # -- checkpoints -------------------------------------------------------------------------
    def _state(self) -> dict:
        return {
            "format": ckpt_io.FORMAT,
            "model": self.net.state_dict(),
            "guide": self.guide.state_dict(),
            "vich": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "warmup": self.warmup.state_dict(),
            "decay": self.decay.state_dict(),
            "rng": get_rng_state(),
            "config": dataclasses.asdict(self.config),
            "model_config": _plain(dataclasses.asdict(self.net.config)),
            "class_names": list(self.class_names),
            "data": {"dataset": self.config.dataset, "label_mode": self.config.label_mode, "image_size": self.config.image_size},
            "epoch": self.epoch,
            "step": self.step,
            "best_metric": self.best,
            "best_metric_name": "valid/accuracy",
        }

    def _load(self, path: Path) -> None:
        state = ckpt_io.load(path, map_location=self.device)
        if list(state["class_names"]) != list(self.class_names):
            raise ValueError(f"{path} was trained for classes {state['class_names']}, this data has {list(self.class_names)}")
        self.net.load_state_dict(state["model"])
        self.guide.load_state_dict(state["guide"])
        self.model.load_state_dict(state["vich"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.warmup.load_state_dict(state["warmup"])
        self.decay.load_state_dict(state["decay"])
        set_rng_state(state["rng"])
        self.epoch, self.step, self.best = state["epoch"], state["step"], state["best_metric"]
        print(f"resumed from {path}: epoch {self.epoch}, step {self.step}, best valid accuracy {self.best:.4f}")

    def _schedules(self) -> tuple[torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.LRScheduler]:
        cfg = self.config
        warm = max(1, cfg.warmup_steps)
        if cfg.lr_schedule == "exponential":
            per_step = torch.optim.lr_scheduler.LinearLR(self.optimizer, 0.01, 1.0, total_iters=warm)
            return per_step, torch.optim.lr_scheduler.ExponentialLR(self.optimizer, cfg.lr_gamma)
        total = max(1, cfg.epochs * len(self._loader(self.train_set, train=True)))

        def factor(step: int) -> float:
            ramp = min(1.0, 0.01 + 0.99 * step / warm)
            return ramp * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))

        per_step = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)
        # A constant per-epoch scheduler keeps one checkpoint layout for both schedules.
        return per_step, torch.optim.lr_scheduler.ExponentialLR(self.optimizer, 1.0)

    # -- training ----------------------------------------------------------------------------
    def _loader(self, dataset: Dataset, train: bool) -> DataLoader:
        sampler = None
        if train and self.config.balanced_per_class:
            from bayes_fer.data import ClassBalancedSampler

            sampler = ClassBalancedSampler(dataset.labels, self.config.balanced_per_class, seed=self.config.seed)
            sampler.set_epoch(self.epoch)
        elif train:
            # Seeded per epoch, so a resumed run draws the same order as an uninterrupted one.
            g = torch.Generator().manual_seed(self.config.seed * 100_003 + self.epoch)
            sampler = RandomSampler(dataset, generator=g)
        bs = self.config.batch_size if train else max(self.config.batch_size, 128)
        return DataLoader(
            dataset,
            batch_size=bs,
            sampler=sampler,
            num_workers=self.config.workers,
            persistent_workers=False,
            pin_memory=self.device.type == "cuda",
            drop_last=train and len(sampler or dataset) > bs,
            generator=torch.Generator().manual_seed(self.config.seed + self.epoch),
        )

    def _loss(self, batch: dict) -> torch.Tensor:
        out = head_output(self.net, batch["image"], self.config.bf16, self.features_fn)
        return elbo_loss(self.model, self.guide, out, batch, len(self.train_set), self.elbo)

    def _train_step(self, batch: dict) -> torch.Tensor:
        """One SVI step. Returns the loss unread: reading it would make the CPU wait for the GPU."""
        # Pyro's and torch's argument checks read tensors on the host, and on CUDA each one
        # stalls the queue; shapes and supports do not change between steps, so there they run
        # on a run's first step only.
        with pyro.validation_enabled(self.device.type != "cuda" or not self._validated):
            loss = self._loss(batch)
            loss.backward()
            if self.config.sam_rho > 0:
                self._sam_second_pass(batch)
        self._validated = True
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.warmup.step()
        return loss.detach()

    def _tally(self, pending: tuple[torch.Tensor, int, int], total: float, seen: int) -> tuple[float, int]:
        """Read a step's ``(loss, step, faces)`` and add it to the epoch's loss sum and face count."""
        loss, step, faces = pending
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"loss is {value} at epoch {self.epoch + 1}, step {step}; the last good checkpoint "
                f"{self.out / 'last.pt'} is kept. Try a lower --lr or a larger --kl-weight/--prior-scale."
            )
        return total + value * faces, seen + faces

    def _sam_second_pass(self, batch: dict) -> None:
        """Sharpness-aware minimisation: take the gradient at the worst point within rho."""
        grads = [p.grad for p in self.params if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])) + 1e-12
        shifts = []
        with torch.no_grad():
            for p in self.params:
                e = p.grad * (self.config.sam_rho / norm) if p.grad is not None else None
                if e is not None:
                    p.add_(e)
                shifts.append(e)
        self.optimizer.zero_grad(set_to_none=True)
        self._loss(batch).backward()
        with torch.no_grad():
            for p, e in zip(self.params, shifts):
                if e is not None:
                    p.sub_(e)

    def fit(self) -> dict:
        cfg = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
        logger = MetricsLogger(self.out)
        start = time.monotonic()
        valid_loader = self._loader(self.valid_set, train=False)
        while self.epoch < cfg.epochs:
            # A head fitted to a trained network leaves the frozen layers' BatchNorm statistics
            # and dropout as they were: the network runs in eval mode (the head has neither).
            self.net.train(not cfg.train_head_only)
            loader = self._loader(self.train_set, train=True)
            bar = progress(loader, desc=f"epoch {self.epoch + 1}/{cfg.epochs}", unit="batch", leave=False)
            total, seen, t0 = 0.0, 0, time.monotonic()
            out_of_time = False
            pending = None  # (loss, step, faces) of the last step, read once the next one is queued
            for batch in bar:
                batch = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
                loss = self._train_step(batch)
                if pending is not None:
                    total, seen = self._tally(pending, total, seen)
                    # refresh=False: the bar's own throttle decides when to redraw (per step it floods logs).
                    bar.set_postfix(loss=f"{total / seen:.4f}", img_s=f"{seen / (time.monotonic() - t0):.0f}",
                                    refresh=False)
                pending = (loss, self.step, batch["image"].shape[0])
                self.step += 1
                if cfg.max_minutes and time.monotonic() - start > 60 * cfg.max_minutes:
                    out_of_time = True
                    break
            if pending is not None:
                total, seen = self._tally(pending, total, seen)
            train_time = time.monotonic() - t0
            self.decay.step()
            self.epoch += 1
            valid = evaluate(self.net, self.guide, valid_loader, self.device, model=self.model)
            metrics = {f"valid/{k}": v for k, v in valid.items()}
            metrics.update({"epoch": self.epoch, "step": self.step, "train/loss": total / max(seen, 1),
                            "train/images_per_s": seen / max(train_time, 1e-9), "lr": self.optimizer.param_groups[0]["lr"]})
            if metrics["valid/accuracy"] > self.best:
                self.best = metrics["valid/accuracy"]
                ckpt_io.save_atomic(self._state(), self.out / "best.pt")
            ckpt_io.save_atomic(self._state(), self.out / "last.pt")
            logger.log(metrics)
            print(
                f"epoch {self.epoch}/{cfg.epochs}  loss {metrics['train/loss']:.4f}  "
                f"valid acc {metrics['valid/accuracy']:.4f}  bal {metrics['valid/balanced_accuracy']:.4f}  nll {metrics['valid/nll']:.4f}  "
                f"ece {metrics['valid/ece']:.4f}  {metrics['train/images_per_s']:.0f} img/s"
            )
            if out_of_time:
                print(f"stopping: the --max-minutes budget of {cfg.max_minutes} minutes is spent")
                break
        logger.close()
        return self.test()

    def test(self) -> dict:
        """Evaluate the best checkpoint on the held-out test split and write ``final.json``."""
        state = ckpt_io.load(self.out / "best.pt", map_location=self.device)
        self.net.load_state_dict(state["model"])
        self.guide.load_state_dict(state["guide"])
        self.model.load_state_dict(state["vich"])
        kw = dict(root=self.config.data_root, image_size=self.config.image_size, label_mode=self.config.label_mode, seed=self.config.seed)
        test_set = _load_test(self.config, kw)
        metrics = {f"test/{k}": v for k, v in evaluate(self.net, self.guide, self._loader(test_set, False), self.device, "test",
                                                          self.model).items()}
        metrics.update({"best_epoch": state["epoch"], "valid/accuracy": state["best_metric"], "test/size": len(test_set)})
        (self.out / "final.json").write_text(json.dumps(metrics, indent=2))
        print(
            f"test ({len(test_set)} faces, best epoch {state['epoch']}): accuracy {metrics['test/accuracy']:.4f}  "
            f"balanced {metrics['test/balanced_accuracy']:.4f}  NLL {metrics['test/nll']:.4f}  ECE {metrics['test/ece']:.4f}"
        )
        return metrics


class MetricsLogger:
    """Per-epoch metrics as CSV and JSON lines, and TensorBoard when it is installed."""

    def __init__(self, out: Path) -> None:
        self.csv_path, self.jsonl = out / "metrics.csv", out / "metrics.jsonl"
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"))
        except Exception:  # noqa: BLE001 - TensorBoard is optional
            self.tb = None

    def log(self, metrics: dict) -> None:
        with self.jsonl.open("a") as f:
            f.write(json.dumps(metrics) + "\n")
        new = not self.csv_path.exists()
        with self.csv_path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(metrics))
            if new:
                writer.writeheader()
            writer.writerow(metrics)
        if self.tb is not None:
            for k, v in metrics.items():
                if k not in ("epoch", "step"):
                    self.tb.add_scalar(k, v, metrics["epoch"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _load_test(config: TrainConfig, kw: dict):
    from bayes_fer.data import load_dataset

    return load_dataset(config.dataset, split="test", size=config.valid_size, **kw)


def _plain(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items() if k != "extra"}


def train(config: TrainConfig, resume: bool = False) -> dict:
    """Run (or resume) training and return the test metrics of the best checkpoint."""
    pyro.set_rng_seed(config.seed)
    return Trainer(config, resume=resume).fit()


__all__ = ["Trainer", "TrainingDiverged", "elbo_loss", "evaluate", "head_output", "preset", "train"]

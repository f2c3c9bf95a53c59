"""SVI training of a POSTER network with the VICH head: the ELBO as a differentiable loss.

Epochs and steps mean what they say: a run stopped by ``--max-minutes`` or ``--max-steps``
records the step it reached within its epoch, and ``--resume`` continues that epoch (same
sample order, the remaining batches only), so the schedule ends where it was planned.

Under ``torchrun`` (:mod:`bayes_fer.training.distributed`) steps are global: one step is one
global batch of ``--batch-size`` faces, shared by the processes. The position within an epoch
is therefore the same whatever the number of processes, and a run stopped mid-epoch under W
processes resumes under any other number at the same global batch; each process takes its new
slice of the remaining batches. The faces and their file-path augmentation are those an
uninterrupted run draws; the ELBO's draws and the cached path's device augmentation come from
per-process streams, re-seeded from (seed, rank, step) when more than one process resumes.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import pyro
import torch
from pyro.infer import TraceMeanField_ELBO

from bayes_fer import checkpoint as ckpt_io
from bayes_fer.training import distributed, rundir
from bayes_fer.training.batches import Batches
from bayes_fer.training.builder import build_network, build_vich
from bayes_fer.training.checks import check_config
from bayes_fer.training.config import LR_SCHEDULES, TrainConfig, preset
from bayes_fer.training.data import load_splits
from bayes_fer.training.device import resolve_device
from bayes_fer.training.logs import MetricsLogger
from bayes_fer.training.metrics import evaluate, progress
from bayes_fer.training.objective import elbo_loss, make_schedules
from bayes_fer.training.resume import check_resumable, saved_config
from bayes_fer.training.state import restore_trainer, trainer_state
from bayes_fer.training.tally import LossTally
from bayes_fer.vich import CLASS_PRIORS, LIKELIHOODS
from guides.base import ENCODER

#: Steps timed before judging whether --max-minutes allows one epoch (the first step is a warm-up).
TIMED_STEPS = 3


class TrainingDiverged(RuntimeError):
    """The loss or the network's outputs became NaN or infinite; the last good checkpoint is kept."""


def clock() -> float:
    """Seconds on a monotonic clock (one place for tests to stand in a clock of their own)."""
    return time.monotonic()


class Trainer:
    """Owns one run: data, model, guide (which owns the network), optimizer, schedules, logs and checkpoints.

    Under ``torchrun`` each process builds one, joins the group, trains its replica on its slice
    of every global batch, and only rank 0 writes, validates and tests.

    Args:
        config: the run's settings; checked first (ranges, names, device).
        resume: continue the run in ``config.out`` from ``last.pt``. Its configuration must
            match ``config`` except for run control (epochs, time and step limits, workers,
            device); every difference is listed.
        overwrite: a fresh run may replace another run's outputs in ``config.out``; without
            it such a folder is refused before anything is touched.

    Raises:
        ValueError: a setting out of range, a split missing or broken (naming the file), a
            resume whose settings differ, a checkpoint that cannot be read.
        bayes_fer.training.rundir.RunDirectoryError: ``config.out`` holds another run.
        bayes_fer.training.rundir.OutputError: ``config.out`` cannot be written.
    """

    def __init__(self, config: TrainConfig, resume: bool = False, overwrite: bool = False) -> None:
        from bayes_fer.data import AUGMENTATIONS, train_transform  # noqa: PLC0415 - light imports

        check_config(config)
        for field, name, allowed in (("augment", config.augment, AUGMENTATIONS), ("likelihood", config.likelihood, LIKELIHOODS),
                                     ("class_prior", config.class_prior, CLASS_PRIORS),
                                     ("lr_schedule", config.lr_schedule, LR_SCHEDULES)):
            if name not in allowed:
                raise ValueError(f"unknown {field} {name!r}; choose {' or '.join(allowed)}")
        self.config = config
        self.out = Path(config.out)
        self.dist, self.device = distributed.setup(resolve_device(config.device))
        self.main = self.dist.is_main  # the one process that writes checkpoints, logs and messages
        rundir.prepare(self.out, resume=resume, overwrite=overwrite)
        self._clear_first = overwrite and not resume
        self.resumed = resume
        state = None
        if resume:
            state = ckpt_io.load(self.out / "last.pt", map_location="cpu")
            check_resumable(saved_config(state["config"]), config, str(self.out / "last.pt"))
        splits = load_splits(config, train_transform(config.image_size, **AUGMENTATIONS[config.augment]))
        self.train_set, self.valid_set, self.test_set = splits.train, splits.valid, splits.test
        if splits.valid_split == "test" and self.main:
            print(f"{config.dataset} ships no validation split: validating on the test split, as the paper does")
        self.batches = Batches(config, {"train": self.train_set, "valid": self.valid_set, "test": self.test_set},
                               self.device, self.dist)
        self.class_names = tuple(self.train_set.class_names)
        net = build_network(config, len(self.class_names), load_weights=not resume, class_names=self.class_names)
        self.model, self.guide = build_vich(config, net, self._class_counts())  # the guide owns the network
        self.model.to(self.device)
        self.guide.to(self.device)
        if config.train_head_only:
            for name, p in net.named_parameters():
                p.requires_grad_(name.startswith("head."))
        # The network's parameters, the model's, then the guide's own: the order optimizer checkpoints keep.
        guide_own = [p for name, p in self.guide.named_parameters() if not name.startswith(f"{ENCODER}.")]
        self.params = [p for p in (*net.parameters(), *self.model.parameters(), *guide_own) if p.requires_grad]
        self._validated = False  # Pyro's argument checks have run on a step of this run
        # The fused step: on the CPU too it halves the optimizer's time (poster_var: 41 ms against 89).
        fused = self.device.type in ("cuda", "cpu")
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=config.weight_decay, fused=fused or None)
        self.epoch, self.step, self.best = 0, 0, -math.inf
        self.epoch_step = 0  # steps done within epoch self.epoch + 1
        self.tally = (0.0, 0, 0.0)  # that epoch's (loss sum, faces, seconds) so far
        self.epoch_validated = True  # False between an epoch's last step and its validation
        n = self.batches.epoch_size
        self.steps_per_epoch = n // config.batch_size if n > config.batch_size else 1
        # Stepped per step (warm-up, or warm-up and cosine annealing) and per epoch (the paper's decay).
        self.warmup, self.decay = self._schedules()
        self.guide.bf16 = config.bf16
        if config.compile:
            self.guide.features_fn = torch.compile(net.forward_features)
        self.elbo = TraceMeanField_ELBO()
        if state is not None:
            restore_trainer(self, state, self.out / "last.pt")
        distributed.seed_process(self.dist, config.seed, self.step)
        self.ddp = distributed.wrap(self.dist, {"model": self.model, "guide": self.guide},  # the guide owns the network
                                    self._local_loss, self.device)

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
    def _save(self, name: str) -> None:
        if self.main:
            ckpt_io.save_atomic(trainer_state(self), self.out / name)

    def _schedules(self) -> tuple[torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.LRScheduler]:
        return make_schedules(self.optimizer, self.config, self.steps_per_epoch)

    # -- training ----------------------------------------------------------------------------
    def _loss(self, batch: dict) -> torch.Tensor:
        """The per-datum loss of a batch (under torchrun, of this process's slice, through DDP)."""
        return self.ddp(batch) if self.ddp is not None else self._local_loss(batch)

    def _backward(self, loss: torch.Tensor, batch: dict) -> None:
        weight = distributed.gradient_weight(self.dist, batch["image"].shape[0], self.batches.global_batch)
        (loss * weight if weight != 1.0 else loss).backward()

    def _local_loss(self, batch: dict) -> torch.Tensor:
        return elbo_loss(self.model, self.guide, batch, len(self.train_set), kl_weight=self.config.kl_weight,
                         elbo=self.elbo)

    def _diverged(self, what: str, step: str | None = None) -> TrainingDiverged:
        return TrainingDiverged(
            f"{what} at epoch {self.epoch + 1}, {step or f'step {self.step}'}; the last good checkpoint "
            f"{self.out / 'last.pt'} is kept. Try a lower --lr or a larger --kl-weight/--prior-scale."
        )

    def _train_step(self, batch: dict) -> torch.Tensor:
        """One SVI step. Returns the loss unread: reading it would make the CPU wait for the GPU."""
        # Pyro's and torch's argument checks read tensors on the host, and on CUDA each one
        # stalls the queue; shapes and supports do not change between steps, so there they run
        # on a run's first step only.
        try:
            with pyro.validation_enabled(self.device.type != "cuda" or not self._validated):
                loss = self._loss(batch)
                self._backward(loss, batch)
                if self.config.sam_rho > 0:
                    self._sam_second_pass(batch)
        except ValueError as e:
            # With validation on, NaN network outputs fail the distributions' argument checks
            # before any loss exists; that is the same divergence the loss check reports.
            if "invalid values" in str(e) or not all(torch.isfinite(p).all() for p in self.params):
                raise self._diverged("the network's outputs are not finite") from e
            raise
        self._validated = True
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.warmup.step()
        return loss.detach()

    def _read(self, tally: LossTally, out_of_time: bool) -> bool:
        """Read the losses kept since the last read; whether any process is out of time.

        Raises:
            TrainingDiverged: a loss was not finite (on any process).
        """
        late, bad = tally.read(out_of_time)
        if bad is not None:
            first, last = bad.steps
            raise self._diverged(f"loss is {bad.value}", f"step {bad.step}" if bad.step is not None else
                                 f"on another process at one of steps {first}-{last}")
        return late

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
        self._backward(self._loss(batch), batch)
        with torch.no_grad():
            for p, e in zip(self.params, shifts):
                if e is not None:
                    p.sub_(e)

    def _stop_reason(self, start: float) -> str | None:
        """Which limit, if any, ends the run now."""
        cfg = self.config
        if cfg.max_steps and self.step >= cfg.max_steps:
            return "--max-steps"
        if cfg.max_minutes and clock() - start >= 60 * cfg.max_minutes:
            return "--max-minutes"
        return None

    def _warn_if_too_short(self, start: float, timed_from: float, steps: int) -> None:
        """Warn when --max-minutes will end the run before this epoch ends, with the estimate."""
        per_step = (clock() - timed_from) / max(steps, 1)
        left = self.steps_per_epoch - self.epoch_step
        budget = 60 * self.config.max_minutes - (clock() - start)
        if self.config.max_minutes and per_step * left > budget and self.main:
            print(f"warning: --max-minutes {self.config.max_minutes:g} is too short for epoch {self.epoch + 1}: at "
                  f"{per_step:.2f} s per step its {self.steps_per_epoch} steps take about "
                  f"{per_step * self.steps_per_epoch / 60:.1f} minutes. The run will stop mid-epoch; --resume continues it")

    def _print_skips(self) -> None:
        if not self.main:
            return
        for split, ds in (("train", self.train_set), ("valid", self.valid_set)):
            summary = getattr(ds, "skipped", None)
            if summary is not None and summary.count:
                print(f"{split}: {summary}")

    def fit(self) -> dict:
        cfg = self.config
        if self._clear_first and self.main:
            removed = rundir.clear(self.out)
            if removed:
                print(f"--overwrite: removed the earlier run's {', '.join(removed)} from {self.out}")
        self._clear_first = False
        logger = None
        if self.main:
            rundir.write_text(self.out / "config.json", json.dumps(dataclasses.asdict(cfg), indent=2))
            done = self.epoch - (0 if self.epoch_validated else 1)
            logger = MetricsLogger(self.out, keep_epochs=done if self.resumed else None)
        start = clock()
        stop = None
        if not self.epoch_validated:  # resumed between an epoch's checkpoint and its validation
            self._validate(logger)
        while self.epoch < cfg.epochs and stop is None:
            # A head fitted to a trained network leaves the frozen layers' BatchNorm statistics
            # and dropout as they were: the network runs in eval mode (the head has neither).
            self.guide.train()
            self.guide.net.train(not cfg.train_head_only)
            n = self.steps_per_epoch
            bar = progress(self.batches.train(self.epoch, self.epoch_step), desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                           unit="batch", leave=False, disable=not self.main)
            total, seen, seconds = self.tally
            tally = LossTally(total, seen, self.dist, self.device)
            t0 = timed_from = clock()
            timed = 0
            for batch in bar:
                batch = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
                loss = self._train_step(batch)
                due = tally.add(loss, self.step, batch["image"].shape[0])
                self.step += 1
                self.epoch_step += 1
                timed += 1
                if timed == 1:
                    timed_from = clock()  # the first step pays for warm-up and compilation
                elif timed == TIMED_STEPS and cfg.max_minutes:
                    self._warn_if_too_short(start, timed_from, timed - 1)
                reason = self._stop_reason(start)
                # Processes reach a step limit together; a time limit they agree on at a read.
                agreed = reason is not None and (reason == "--max-steps" or not self.dist.enabled)
                if due or agreed:
                    late = self._read(tally, reason == "--max-minutes")
                    stop = reason if agreed else ("--max-minutes" if late else None)
                    # refresh=False: the bar's own throttle decides when to redraw (per step it floods logs).
                    bar.set_postfix(loss=f"{tally.total / max(tally.seen, 1):.4f}",
                                    img_s=f"{tally.seen / (clock() - t0 + seconds):.0f}", refresh=False)
                if stop:
                    break
            bar.close()
            if self._read(tally, self._stop_reason(start) == "--max-minutes") and stop is None:
                stop = "--max-minutes"
            self.tally = (tally.total, tally.seen, seconds + clock() - t0)
            if self.epoch_step < n:  # stopped mid-epoch: a checkpoint to resume from, nothing validated
                self._save("last.pt")
                break
            self.decay.step()
            self.epoch += 1
            self.epoch_step = 0
            self.epoch_validated = False
            self._save("last.pt")  # before validation: a validation split failing now never loses the epoch
            self._validate(logger)
        if logger is not None:
            logger.close()
        stopped = None
        if stop and (self.epoch < cfg.epochs or self.epoch_step):
            stopped = f"stopped by {stop} at epoch {self.epoch + (1 if self.epoch_step else 0)}, step " \
                      f"{self.epoch_step or self.steps_per_epoch} of {self.steps_per_epoch}"
            if self.main:
                print(f"{stopped}; continue with --resume")
        return self.test(stopped)

    def _validate(self, logger: MetricsLogger | None) -> None:
        """Validate the epoch just trained, keep the best checkpoint, log, and checkpoint again.

        Rank 0 alone validates; the other processes go on to their next collective and wait there.
        """
        cfg = self.config
        total, seen, seconds = self.tally
        self.epoch_validated = True
        self.tally = (0.0, 0, 0.0)
        if not self.main:
            return
        valid = evaluate(self.guide, self.batches.eval("valid"), self.device, model=self.model)
        metrics = {f"valid/{k}": v for k, v in valid.items()}
        metrics.update({"epoch": self.epoch, "step": self.step, "train/loss": total / max(seen, 1),
                        "train/images_per_s": seen / max(seconds, 1e-9), "lr": self.optimizer.param_groups[0]["lr"]})
        if metrics["valid/accuracy"] > self.best:
            self.best = metrics["valid/accuracy"]
            self._save("best.pt")
        self._save("last.pt")
        logger.log(metrics)
        print(
            f"epoch {self.epoch}/{cfg.epochs}  loss {metrics['train/loss']:.4f}  "
            f"valid acc {metrics['valid/accuracy']:.4f}  bal {metrics['valid/balanced_accuracy']:.4f}  nll {metrics['valid/nll']:.4f}  "
            f"ece {metrics['valid/ece']:.4f}  {metrics['train/images_per_s']:.0f} img/s"
        )
        self._print_skips()

    def test(self, stopped: str | None = None) -> dict:
        """Evaluate the best checkpoint on the held-out test split and write ``final.json``.

        Before the first epoch has ended there is no best checkpoint: ``last.pt`` is tested,
        and ``final.json`` says so. Under torchrun rank 0 tests and every process returns its metrics.
        """
        return self.dist.from_main(self._test(stopped) if self.main else None)

    def _test(self, stopped: str | None) -> dict:
        path = self.out / "best.pt"
        if not path.exists():
            path = self.out / "last.pt"
        state = ckpt_io.load(path, map_location=self.device)
        self.guide.net.load_state_dict(state["model"])
        self.guide.load_state_dict_without_net(state["guide"])
        self.model.load_state_dict(state["vich"])
        result = evaluate(self.guide, self.batches.eval("test"), self.device, "test", self.model)
        metrics = {f"test/{k}": v for k, v in result.items()}
        metrics.update({"best_epoch": state["epoch"], "test/size": len(self.test_set), "tested": path.name})
        if math.isfinite(state["best_metric"]):
            metrics["valid/accuracy"] = state["best_metric"]
        if stopped:
            metrics["stopped"] = stopped
        skipped = getattr(self.test_set, "skipped", None)
        if skipped is not None and skipped.count:
            metrics["test/skipped"] = skipped.count
            print(f"test: {skipped}")
        rundir.write_text(self.out / "final.json", json.dumps(metrics, indent=2))
        which = f"best epoch {state['epoch']}" if path.name == "best.pt" else "last.pt: no epoch has ended yet"
        print(
            f"test ({len(self.test_set)} faces, {which}): accuracy {metrics['test/accuracy']:.4f}  "
            f"balanced {metrics['test/balanced_accuracy']:.4f}  NLL {metrics['test/nll']:.4f}  ECE {metrics['test/ece']:.4f}"
        )
        return metrics


def train(config: TrainConfig, resume: bool = False, overwrite: bool = False) -> dict:
    """Run (or resume) training and return the test metrics of the best checkpoint.

    Under ``torchrun`` every process calls it; each leaves the process group at the end.
    """
    pyro.set_rng_seed(config.seed)
    trainer = Trainer(config, resume=resume, overwrite=overwrite)
    try:
        metrics = trainer.fit()
        # Every process reaches the end before the group is torn down: a process that left
        # while another still held a collective was aborted at exit ("terminate called
        # without an active exception") in about half the 2-process runs on a busy machine.
        trainer.dist.barrier()
        return metrics
    finally:
        distributed.shutdown(trainer.dist)


__all__ = ["Trainer", "TrainingDiverged", "elbo_loss", "evaluate", "preset", "resolve_device", "train"]

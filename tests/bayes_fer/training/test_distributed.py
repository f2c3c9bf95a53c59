"""torchrun + DDP on the CPU (gloo): sliced global batches, the global batch's gradient, rank-0 outputs."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pyro
import pytest
import torch
import torch.multiprocessing as mp

from bayes_fer import checkpoint as ckpt_io
from bayes_fer.training import TrainConfig, Trainer, distributed
from bayes_fer.training.batches import ShardedBatchSampler
from bayes_fer.training.data import EpochOrder
from bayes_fer.training.distributed import DistContext
from tests.checkpoints import REPO

#: Two gloo processes against one at the same global batch (of 15: slices of 8 and 7 faces),
#: training the head of a frozen network with the delta guide, where nothing is drawn per
#: process: the final metrics agree to float rounding, within these bounds. (A whole network
#: in training mode normalises by each process's own BatchNorm batch statistics, and the
#: normal guide draws per-process noise; those runs agree within noise only.)
LOSS_RELATIVE_TOLERANCE = 1e-4
ACCURACY_TOLERANCE = 1 / 32  # one test face of 32 flipping on a near tie

#: A global batch of 5 on 2 processes: slices of 3 and 2 faces, weighted 6/5 and 4/5.
GRADIENT_RUN = TrainConfig(train_size=10, valid_size=4, batch_size=5, epochs=1, guide="delta", workers=0, kl_weight=0.01)


def test_each_global_batch_is_cut_into_one_slice_per_process():
    order = EpochOrder(list(range(10)), seed=0, epoch=0)
    one = list(ShardedBatchSampler(order, 4, True, DistContext()))
    two = [list(ShardedBatchSampler(order, 4, True, DistContext(r, 2))) for r in range(2)]
    three = [list(ShardedBatchSampler(order, 4, True, DistContext(r, 3))) for r in range(3)]
    assert [[i for i, _ in b] for b in one] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [a + b for a, b in zip(*two)] == one, "two slices make each global batch, seeds included"
    assert [a + b + c for a, b, c in zip(*three)] == one
    assert [len(s) for s in three[0]] == [2, 2] and [len(s) for s in three[2]] == [1, 1]
    # Resumed at global step 1: the remaining global batch, whatever the number of processes.
    tail = EpochOrder(list(range(10)), seed=0, epoch=0, start=4)
    assert [list(ShardedBatchSampler(tail, 4, True, DistContext(r, 2))) for r in range(2)] == [[two[0][1]], [two[1][1]]]
    assert list(ShardedBatchSampler(list(range(3)), 4, False, DistContext(1, 2))) == [[2]]
    with pytest.raises(ValueError, match="a global batch of 2 faces cannot be shared by 3 processes"):
        ShardedBatchSampler(list(range(10)), 4, False, DistContext(0, 3))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _first_step(trainer: Trainer) -> dict:
    """The loss, indices and parameter gradients of the first step of epoch 1, in eval mode
    (BatchNorm on its running statistics: per-process batch statistics differ by design)."""
    trainer.guide.net.eval()
    batch = next(iter(trainer.batches.train(0)))
    loss = trainer._loss(batch)
    trainer._backward(loss, batch)
    grads = {f"{part}.{name}": p.grad.detach().clone() for part, module in
             (("model", trainer.model), ("guide", trainer.guide))  # the guide owns the network
             for name, p in module.named_parameters() if p.grad is not None}
    return {"loss": loss.detach(), "index": batch["index"], "grads": grads}


def _process(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    pyro.set_rng_seed(GRADIENT_RUN.seed)  # as train() does: every process builds the same network
    trainer = Trainer(GRADIENT_RUN.replace(out=out))
    try:
        torch.save(_first_step(trainer), f"{out}/rank{rank}.pt")
    finally:
        distributed.shutdown(trainer.dist)


def test_two_processes_average_to_the_gradient_of_the_global_batch(tmp_path):
    mp.spawn(_process, args=(2, _free_port(), str(tmp_path / "two")), nprocs=2)
    pyro.set_rng_seed(GRADIENT_RUN.seed)
    one = _first_step(Trainer(GRADIENT_RUN.replace(out=str(tmp_path / "one"))))
    ranks = [torch.load(tmp_path / "two" / f"rank{r}.pt") for r in range(2)]
    assert [len(r["index"]) for r in ranks] == [3, 2]
    assert torch.equal(torch.cat([r["index"] for r in ranks]), one["index"]), "the slices make the global batch"
    # Each process's loss is the per-datum loss of its slice: the plate still spans all N faces.
    assert (3 * ranks[0]["loss"] + 2 * ranks[1]["loss"]) / 5 == pytest.approx(one["loss"].item(), rel=1e-5)
    assert ranks[0]["grads"].keys() == one["grads"].keys() and len(one["grads"]) > 10
    for name, grad in one["grads"].items():
        for r in ranks:
            torch.testing.assert_close(r["grads"][name], grad, rtol=1e-4, atol=1e-7, msg=name)


def _run(out, nproc: int, *extra: str) -> dict:
    args = ["--train-size", "60", "--valid-size", "32", "--batch-size", "15", "--epochs", "1", "--warmup-steps", "1",
            "--lr", "2e-3", "--seed", "0", "--workers", "0", "--device", "cpu", "--out", str(out), *extra]
    script = str(REPO / "scripts" / "svi_train.py")
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    cmd = [*launch, script, *args] if nproc > 1 else [sys.executable, script, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    log = out / "metrics.jsonl"  # absent until an epoch ends
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return {"stdout": proc.stdout, "final": json.loads((out / "final.json").read_text()), "rows": rows}


@pytest.mark.slow
def test_torchrun_two_processes_match_one_and_resume_under_another_count(tmp_path):
    head = ("--train-head-only", "--guide", "delta")
    one = _run(tmp_path / "one", 1, *head)
    two = _run(tmp_path / "two", 2, *head)
    assert two["stdout"].count("epoch 1/1") == 1 and two["stdout"].count("outputs in") == 1, "rank 0 alone prints"
    assert len(two["rows"]) == 1, "rank 0 alone logs"
    assert ckpt_io.load(tmp_path / "two" / "last.pt")["step"] == 4, "a step is a global batch: 60 faces / 15"
    a, b = one["final"], two["final"]
    assert abs(a["test/accuracy"] - b["test/accuracy"]) <= ACCURACY_TOLERANCE, (a, b)
    for key in ("test/nll", "test/ece"):
        assert b[key] == pytest.approx(a[key], rel=LOSS_RELATIVE_TOLERANCE), key
    for key in ("train/loss", "valid/nll"):
        assert two["rows"][0][key] == pytest.approx(one["rows"][0][key], rel=LOSS_RELATIVE_TOLERANCE), key

    # The whole network under two processes from the cache, stopped mid-epoch, resumed under one:
    # the same global step, the rest of the epoch.
    _run(tmp_path / "moved", 2, "--max-steps", "1", "--data-cache", str(tmp_path / "cache"))
    state = ckpt_io.load(tmp_path / "moved" / "last.pt")
    assert (state["epoch"], state["epoch_step"], state["step"]) == (0, 1, 1)
    resumed = _run(tmp_path / "moved", 1, "--resume", "--max-steps", "0")
    assert "step 1 of 4 in epoch 1" in resumed["stdout"]
    state = ckpt_io.load(tmp_path / "moved" / "last.pt")
    assert (state["epoch"], state["epoch_step"], state["step"]) == (1, 0, 4)
    assert "stopped" not in resumed["final"] and resumed["final"]["test/size"] == 32
    assert 0 < resumed["rows"][0]["train/loss"] < 10 and resumed["rows"][0]["step"] == 4

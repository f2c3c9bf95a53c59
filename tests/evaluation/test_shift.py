"""``python -m evaluation.calibration`` with conformal sets, OOD inputs and the corruption suite."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from evaluation.calibration import main
from evaluation.ood_predict import UnlabelledPredictions, load_unlabelled, save_unlabelled
from evaluation.predictions import Predictions, save_predictions

NAMES = ("neutral", "happiness", "surprise", "sadness")


def _faces(rng, n: int, sharpness: float) -> Predictions:
    labels = rng.integers(0, 4, n)
    logits = rng.normal(size=(n, 4))
    logits[np.arange(n), labels] += sharpness
    samples = np.exp(logits[None] + rng.normal(scale=0.5, size=(8, n, 4)))  # (S, N, K)
    samples /= samples.sum(-1, keepdims=True)
    return Predictions(probs=samples.mean(0), labels=labels, samples=samples, loc=logits,
                       scale=np.full((n, 4), 0.5) + rng.uniform(size=(n, 4)), class_names=NAMES)


@pytest.fixture
def saved(tmp_path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    paths = {"test": tmp_path / "test.npz", "valid": tmp_path / "valid.npz", "ood": tmp_path / "ood.npz",
             "corruptions": tmp_path / "corruptions"}
    save_predictions(paths["test"], _faces(rng, 300, 2.0))
    save_predictions(paths["valid"], _faces(rng, 300, 2.0))
    ood = _faces(rng, 60, 0.0)  # no class stands out: every score should flag them
    save_unlabelled(paths["ood"], UnlabelledPredictions(ood.probs, ood.samples, ood.loc, ood.scale,
                                                        np.array(["noise", "stripes"] * 30),
                                                        extra={"epistemic_mi": np.full(60, 0.5)}))
    np.savez(paths["test"], **dict(np.load(paths["test"])), epistemic_mi=np.zeros(300))
    for name, severity, sharpness in [("clean", 0, 2.0)] + [("jpeg", s, 2.0 - 0.35 * s) for s in range(1, 6)]:
        save_predictions(paths["corruptions"] / f"{name}_s{severity}.npz", _faces(rng, 200, sharpness))
    return paths


def test_predictions_mode_end_to_end(tmp_path, saved):
    out = tmp_path / "eval"
    assert main(["--predictions", str(saved["test"]), "--calibrate-on", str(saved["valid"]), "--out", str(out),
                 "--conformal", "0.1", "0.2", "--conformal-score", "aps", "raps", "--mondrian",
                 "--ood-predictions", str(saved["ood"]), "--corruption-predictions", str(saved["corruptions"]),
                 "--formats", "png"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for alpha in ("0.1", "0.2"):
        assert abs(metrics[f"conformal_coverage@{alpha}"] - (1 - float(alpha))) < 0.06
        assert metrics[f"conformal_coverage@{alpha}"] == metrics[f"conformal_coverage@{alpha}/aps"]
        assert 1 <= metrics[f"conformal_set_size@{alpha}/raps"] <= 4
        assert f"conformal_coverage@{alpha}/raps/sadness" in metrics
    for score in ("max_prob", "entropy", "mutual_information", "aleatoric", "epistemic_mi", "spread", "set_size"):
        assert 0 <= metrics[f"auroc_misclassification/{score}"] <= 1
        assert 0 <= metrics[f"fpr95_ood/{score}"] <= 1
    assert metrics["auroc_ood/epistemic_mi"] == 1.0  # 0.5 on every OOD image, 0 on every face
    assert metrics["auroc_ood/max_prob"] > 0.7 and "auroc_ood/noise/max_prob" in metrics
    assert metrics["corruption_monotonic/max_prob"] in (0, 1) and "corruption/jpeg/5/accuracy" in metrics
    assert metrics["corruption/jpeg/5/accuracy"] < metrics["corruption/jpeg/0/accuracy"]
    for figure in ("conformal_coverage", "ood_histograms", "ood_roc", "corruptions"):
        assert (out / f"{figure}.png").is_file(), figure
    report = (out / "report.md").read_text()
    assert "## Which uncertainty score to trust" in report and "## Conformal sets" in report
    assert "class-conditional (Mondrian)" in report


@pytest.mark.parametrize("allow_empty", [False, True])
def test_mondrian_per_class_report(tmp_path, saved, allow_empty):
    out = tmp_path / "eval"
    assert main(["--predictions", str(saved["test"]), "--calibrate-on", str(saved["valid"]), "--out", str(out),
                 "--conformal", "0.1", "0.2", "--conformal-score", "aps", "raps", "--mondrian",
                 "--conformal-draws", "3",
                 "--formats", "png"] + (["--conformal-allow-empty"] if allow_empty else [])) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["conformal_allow_empty"] == int(allow_empty) and metrics["conformal_class_draws"] == 3
    valid, test = np.load(saved["valid"]), np.load(saved["test"])
    assert metrics["conformal_class_calibration_count/sadness"] == int((valid["labels"] == 3).sum())
    assert metrics["conformal_class_test_count/sadness"] == int((test["labels"] == 3).sum())
    for key in ("0.1/aps", "0.2/raps"):
        low, high = (metrics[f"conformal_class_range_{end}@{key}/neutral"] for end in ("low", "high"))
        mean = metrics[f"conformal_class_coverage_mean@{key}/neutral"]
        assert low < 1 - float(key.split("/")[0]) < high
        assert metrics[f"conformal_class_in_range@{key}/neutral"] == int(low <= mean <= high)
        assert 0 <= metrics[f"conformal_classes_within_tolerance@{key}"] <= 4
    assert (out / "conformal_class_coverage.png").is_file()
    report = (out / "report.md").read_text()
    assert "## Per-class coverage against its sampling range" in report and "**raps, alpha 0.2**" in report
    assert ("empty sets allowed" in report) == allow_empty


def test_per_class_draws_need_a_positive_count(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--predictions", str(tmp_path / "p.npz"), "--out", str(tmp_path / "o"), "--calibrate-on", "v.npz",
              "--conformal", "0.1", "--mondrian", "--conformal-draws", "0"])
    assert "--conformal-draws must be a positive number of draws, got 0" in capsys.readouterr().err


def test_the_saved_calibrator_gives_the_sets_that_were_scored(tmp_path, saved, capsys):
    from bayes_fer.conformal import ConformalCalibrator, coverage
    from evaluation.predictions import load_predictions

    out, calib = tmp_path / "eval", tmp_path / "calib.json"
    assert main(["--predictions", str(saved["test"]), "--calibrate-on", str(saved["valid"]), "--out", str(out),
                 "--conformal", "0.1", "0.2", "--conformal-score", "lac", "aps", "--save-conformal", str(calib),
                 "--formats", "png"]) == 0
    assert f"--conformal {calib} --alpha 0.1" in capsys.readouterr().out
    calibrator = ConformalCalibrator.load(calib)
    assert (calibrator.alpha, calibrator.score, calibrator.class_names) == (0.1, "lac", list(NAMES))
    metrics = json.loads((out / "metrics.json").read_text())
    test = load_predictions(saved["test"])
    for alpha in (0.1, 0.2):  # one calibration answers both levels, as the separate fits did
        assert coverage(calibrator.predict_sets(test.probs, alpha=alpha), test.labels) == \
            metrics[f"conformal_coverage@{alpha:g}/lac"]


@pytest.mark.parametrize("argv, message", [
    (["--conformal", "0.1"], "--conformal needs validation predictions"),
    (["--save-conformal", "c.json", "--calibrate-on", "v.npz"], "--save-conformal writes a fitted calibrator: add "
                                                                 "--conformal ALPHA"),
    (["--conformal", "1.5", "--calibrate-on", "v.npz"], r"--conformal levels must lie in \(0, 1\)"),
    (["--ood-synthetic", "10"], "need --checkpoint; with --predictions use --ood-predictions"),
    (["--corruptions"], "need --checkpoint"),
    (["--raps-lambda", "-1"], "--raps-lambda and --raps-k-reg must be >= 0"),
    (["--conformal-allow-empty"], "--conformal-allow-empty changes conformal sets: add --conformal ALPHA"),
])
def test_bad_flag_combinations(tmp_path, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--predictions", str(tmp_path / "p.npz"), "--out", str(tmp_path / "o"), *argv])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_missing_ood_file_is_reported(tmp_path, saved, capsys):
    code = main(["--predictions", str(saved["test"]), "--out", str(tmp_path / "o"),
                 "--ood-predictions", str(tmp_path / "none.npz")])
    assert code == 1
    assert "OOD predictions file not found" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from tests.checkpoints import run_train

    folder = tmp_path_factory.mktemp("run")
    run_train(folder)
    return folder / "best.pt"


@pytest.mark.slow
def test_checkpoint_mode_runs_ood_and_corruptions(tmp_path, tiny_checkpoint):
    out = tmp_path / "eval"
    argv = ["--checkpoint", str(tiny_checkpoint), "--out", str(out), "--size", "24", "--calibrate-split", "valid",
            "--conformal", "0.2", "--ood-synthetic", "12", "--corruptions", "--corruption-size", "6",
            "--corruption-names", "jpeg", "--num-samples", "4", "--formats", "png", "--no-progress",
            "--device", "cpu"]
    assert main(argv) == 0
    ood = load_unlabelled(out / "predictions_ood.npz")
    assert ood.probs.shape[0] == 12 and len(set(ood.kind.tolist())) == 6
    cached = sorted(p.name for p in (out / "corruptions").iterdir())
    assert cached == ["clean_s0.npz"] + [f"jpeg_s{s}.npz" for s in range(1, 6)]
    metrics = json.loads((out / "metrics.json").read_text())
    assert "auroc_ood/max_prob" in metrics and "corruption/jpeg/5/set_size" in metrics
    # A second run reuses the cached predictions: same figures without running the suite again.
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "corruptions").iterdir()}
    assert main(argv) == 0
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (out / "corruptions").iterdir()}
    assert json.loads((out / "metrics.json").read_text())["corruption/jpeg/3/accuracy"] == \
        metrics["corruption/jpeg/3/accuracy"]

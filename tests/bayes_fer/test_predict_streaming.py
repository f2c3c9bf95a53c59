"""``python -m bayes_fer.predict`` in process: one prediction rule, outputs checked first and
streamed, unique annotated names, errors in input order, clear errors for bad checkpoints.

The model is a real Predictor around a pixel-sized network (tests/stand_ins.py), so a
thousand faces take seconds."""
from __future__ import annotations

import csv
import json
import os
import re

import numpy as np
import pytest
import torch

import bayes_fer.loading
import bayes_fer.predictive
from bayes_fer.conformal import ConformalCalibrator
from bayes_fer.predict import main
from bayes_fer.readout import ADJECTIVES, set_readout
from tests.stand_ins import FERPLUS, pixel_predictor, write_faces

LINE = re.compile(r"^(?P<path>\S+): (?P<label>\S+) \((?P<readout>[^)]*)\)  \[(?P<tops>[^\]]*)\]")


@pytest.fixture
def predictor(monkeypatch):
    """The stand-in predictor, served to the CLI for any --checkpoint; records each batch size."""
    model = pixel_predictor()
    model.calls = []
    original = model.predict_batch

    def predict_batch(images, num_samples=100, return_samples=False):
        model.calls.append(len(images))
        return original(images, num_samples, return_samples)

    model.predict_batch = predict_batch
    monkeypatch.setattr(bayes_fer.loading, "load_predictor", lambda path, device="auto", dataset=None: model)
    return model


def test_on_1000_faces_the_csv_prediction_is_the_printed_label_everywhere(predictor, tmp_path, capsys):
    write_faces(tmp_path / "faces", [f"{i:04d}.png" for i in range(1000)])
    code = main([str(tmp_path / "faces"), "--checkpoint", "stand-in.pt", "--num-samples", "50", "--batch-size", "128",
                 "--csv", str(tmp_path / "out.csv"), "--json", str(tmp_path / "out.json")])
    assert code == 0
    printed = {m["path"]: m for m in map(LINE.match, capsys.readouterr().out.splitlines()) if m}
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    faces = json.loads((tmp_path / "out.json").read_text())["faces"]
    assert len(printed) == len(rows) == len(faces) == 1000
    loc_disagrees = 0
    for row, face in zip(rows, faces):
        line = printed[row["path"]]
        probs = [float(row[f"prob/{name}"]) for name in FERPLUS]
        locs = [float(row[f"loc/{name}"]) for name in FERPLUS]
        argmax = FERPLUS[int(np.argmax(probs))]
        assert row["prediction"] == line["label"] == face["prediction"] == argmax
        assert line["tops"].split(" ")[0] == argmax  # top-k starts with it
        assert row["readout"] == line["readout"] == face["readout"]
        assert row["readout"].split(" and ")[0] == ADJECTIVES[argmax]
        loc_disagrees += FERPLUS[int(np.argmax(locs))] != argmax
    # The faces include ones where the argmax of the intensity means names another class, so
    # a second rule anywhere would have shown.
    assert loc_disagrees > 0


def test_output_paths_are_checked_before_anything_is_computed(predictor, tmp_path, capsys):
    write_faces(tmp_path, ["a.png"])
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    for flag, target, message in [
        ("--csv", tmp_path / "file" / "out.csv", "--csv .* cannot be created: .*file is a file"),
        ("--json", tmp_path / "folder", "--json .*folder is a folder"),
        ("--annotate", tmp_path / "file", "--annotate .*file cannot be used as a folder"),
    ]:
        code = main([str(tmp_path / "a.png"), "--checkpoint", "x.pt", "--csv", str(tmp_path / "ok.csv"),
                     flag, str(target)])
        assert code == 2
        assert re.search(message, capsys.readouterr().err)
        assert predictor.calls == [] and not (tmp_path / "ok.csv").exists()


def test_an_interrupt_keeps_every_row_written_so_far(predictor, tmp_path, capsys):
    write_faces(tmp_path / "faces", [f"{i}.png" for i in range(10)])
    original = predictor.predict_batch

    def interrupted(images, num_samples=100, return_samples=False):
        if len(predictor.calls) == 2:
            raise KeyboardInterrupt
        return original(images, num_samples, return_samples)

    predictor.predict_batch = interrupted
    code = main([str(tmp_path / "faces"), "--checkpoint", "x.pt", "--batch-size", "2", "--num-samples", "5",
                 "--csv", str(tmp_path / "out.csv"), "--json", str(tmp_path / "out.json")])
    assert code == 130 and "interrupted after 4 face(s)" in capsys.readouterr().err
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    document = json.loads((tmp_path / "out.json").read_text())
    assert [r["path"] for r in rows] == [f["path"] for f in document["faces"]] == [
        str(tmp_path / "faces" / f"{i}.png") for i in range(4)]
    assert document["complete"] is False


def test_rows_reach_the_files_while_later_faces_are_still_being_predicted(predictor, tmp_path):
    write_faces(tmp_path / "faces", [f"{i}.png" for i in range(6)])
    seen = []
    original = predictor.predict_batch

    def watching(images, num_samples=100, return_samples=False):
        seen.append(len(list(csv.DictReader((tmp_path / "out.csv").open()))))
        return original(images, num_samples, return_samples)

    predictor.predict_batch = watching
    assert main([str(tmp_path / "faces"), "--checkpoint", "x.pt", "--batch-size", "2", "--num-samples", "3",
                 "--csv", str(tmp_path / "out.csv")]) == 0
    assert seen == [0, 2, 4]


def test_annotated_pictures_keep_their_relative_paths(predictor, tmp_path):
    write_faces(tmp_path / "faces", ["a/face.png", "b/face.png", "face.jpg"], size=40)
    write_faces(tmp_path / "other", ["face.jpg"], size=40)
    out = tmp_path / "annotated"
    assert main([str(tmp_path / "faces"), str(tmp_path / "other" / "face.jpg"), "--checkpoint", "x.pt",
                 "--num-samples", "3", "--annotate", str(out)]) == 0
    made = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert made == ["a/face.png.annotated.png", "b/face.png.annotated.png", "face.jpg-2.annotated.png",
                    "face.jpg.annotated.png"]


def test_inputs_without_a_result_are_reported_on_stderr_in_input_order(predictor, tmp_path, capsys):
    names = [f"{i}.png" for i in range(8)]
    write_faces(tmp_path / "faces", names)
    for broken in ("1.png", "5.png", "6.png"):
        (tmp_path / "faces" / broken).write_bytes(b"not an image")
    code = main([str(tmp_path / "faces"), str(tmp_path / "absent.png"), "--checkpoint", "x.pt", "--batch-size", "4",
                 "--num-samples", "3", "--csv", str(tmp_path / "out.csv")])
    captured = capsys.readouterr()
    assert code == 1  # a missing input
    errors = [line for line in captured.err.splitlines() if "not a readable image" in line]
    assert [e.split(":")[0].rsplit("/", 1)[1] for e in errors] == ["1.png", "5.png", "6.png"]
    assert "absent.png: no such file or folder" in captured.err
    assert "not a readable image" not in captured.out
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert [r["path"].rsplit("/", 1)[1] for r in rows] == names
    assert [bool(r["error"]) for r in rows] == [n in ("1.png", "5.png", "6.png") for n in names]
    assert "5 face(s) predicted, 3 input(s) without a result" in captured.out


@pytest.mark.parametrize("kind", ["empty", "truncated", "text", "random", "folder"])
def test_unreadable_checkpoints_give_one_clear_error_naming_the_file(kind, tmp_path, capsys):
    path = tmp_path / "best.pt"
    if kind == "folder":
        path.mkdir()
    else:
        torch.save({"weights": torch.zeros(1000)}, path)
        whole = path.read_bytes()
        data = {"empty": b"", "truncated": whole[: len(whole) // 2], "text": b"epoch 3, accuracy 0.71\n",
                "random": np.random.default_rng(0).bytes(4096)}[kind]
        path.write_bytes(data)
    write_faces(tmp_path, ["a.png"])
    assert main([str(tmp_path / "a.png"), "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and len(err.strip().splitlines()) == 1
    assert "weights_only" not in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["--num-samples", "0"], "--num-samples: expected a positive integer, got 0"),
    (["--batch-size", "-3"], "--batch-size: expected a positive integer, got -3"),
    (["--device", "tpu"], "--device: unknown device 'tpu'; expected auto, cpu, mps, cuda or cuda:N"),
])
def test_bad_numbers_and_devices_are_refused_before_loading(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["face.png", "--checkpoint", "x.pt", *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_monte_carlo_draws_come_in_bounded_chunks(monkeypatch):
    predictor = pixel_predictor()
    images = torch.rand(5, 3, 16, 16)
    sizes = []
    original = predictor.model.predictive_logits

    def recording(z):  # called once per chunk of draws z (S_chunk, B, K)
        sizes.append(z.shape[0])
        return original(z)

    monkeypatch.setattr(predictor.model, "predictive_logits", recording)
    monkeypatch.setattr(bayes_fer.predictive, "MAX_DRAW_ELEMENTS", 5 * 8 * 30)  # 30 draws of 5 faces x 8 classes
    batch = torch.stack([predictor.preprocess(image) for image in images])
    result = predictor.predict_batch(batch, num_samples=100, return_samples=True)
    assert sizes == [30, 30, 30, 10]
    # The accumulated mean and mean entropy equal those of the kept draws.
    torch.testing.assert_close(result.probs, result.samples.mean(0))
    entropy = lambda p: -(p * p.log()).sum(-1)  # noqa: E731
    torch.testing.assert_close(result.mutual_information, entropy(result.probs) - entropy(result.samples).mean(0))
    assert result.samples.shape == (100, 5, 8)


def _calibrator(tmp_path, alpha: float = 0.2, n: int = 400, class_names=FERPLUS) -> str:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(len(class_names), 0.5), size=n)
    labels = np.array([rng.choice(len(class_names), p=p) for p in probs])
    calibrator = ConformalCalibrator(score="lac", randomized=False).fit(probs, labels, alpha, class_names=class_names)
    return str(calibrator.save(tmp_path / "calib.json"))


def test_conformal_sets_reach_the_csv_the_json_and_the_printed_line(predictor, tmp_path, capsys):
    write_faces(tmp_path / "faces", [f"{i:02d}.png" for i in range(40)])
    calib = _calibrator(tmp_path, alpha=0.1)
    code = main([str(tmp_path / "faces"), "--checkpoint", "x.pt", "--num-samples", "20", "--conformal", calib,
                 "--alpha", "0.2", "--csv", str(tmp_path / "out.csv"), "--json", str(tmp_path / "out.json"),
                 "--annotate", str(tmp_path / "annotated")])
    assert code == 0 and len(list((tmp_path / "annotated").glob("*.png"))) == 40
    printed = {m["path"]: m for m in map(LINE.match, capsys.readouterr().out.splitlines()) if m}
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    document = json.loads((tmp_path / "out.json").read_text())
    assert document["conformal"] == {"alpha": 0.2, "coverage": 0.8, "score": "lac", "mondrian": False,
                                     "randomized": False, "calibration_examples": 400}
    threshold = 1 - ConformalCalibrator.load(calib).thresholds(0.2)[0]  # LAC: p >= threshold is in the set
    sizes = []
    for row, face in zip(rows, document["faces"]):
        names = row["set"].split("|")
        probs = {name: float(row[f"prob/{name}"]) for name in FERPLUS}
        ranked = sorted(FERPLUS, key=lambda n: -probs[n])
        expected = [n for n in ranked if probs[n] >= threshold or n == row["prediction"]]
        assert names == face["set"] == expected and names[0] == row["prediction"]
        assert row["readout"] == face["readout"] == printed[row["path"]]["readout"] == set_readout(names, 8)
        assert f"  80% set {{{', '.join(names)}}}  " in printed[row["path"]].string
        sizes.append(len(names))
    assert len(rows) == 40 and min(sizes) == 1 and max(sizes) >= 2  # both kinds of readout occur


@pytest.mark.parametrize("argv, message", [
    (["--alpha", "0.1"], "--alpha sets the level of the conformal sets, which need a calibrator: add --conformal"),
    (["--conformal", "{other}"], r"--conformal .*calib.json: conformal calibrator: calibrated on the classes "
                                 r"\['happiness', 'neutral'.*but the model has \['neutral', 'happiness'"),
    (["--conformal", "{calib}", "--alpha", "0.001"], r"--alpha: 0.001 is below the calibrated range "
                                                     r"\[0.00249, 1\)"),
    (["--conformal", "{calib}", "--alpha", "1.5"], r"expected a miscoverage level in \(0, 1\)"),
    (["--conformal", "{absent}"], "conformal calibrator file not found"),
])
def test_conformal_flags_are_refused_before_any_inference(predictor, tmp_path, capsys, argv, message):
    write_faces(tmp_path, ["a.png"])
    paths = {"calib": _calibrator(tmp_path), "absent": str(tmp_path / "absent.json")}
    (tmp_path / "other").mkdir()
    paths["other"] = _calibrator(tmp_path / "other", class_names=["happiness", "neutral", *FERPLUS[2:]])
    code = main([str(tmp_path / "a.png"), "--checkpoint", "x.pt", *[a.format(**paths) for a in argv]])
    assert code == 2 and re.search(message, capsys.readouterr().err)
    assert predictor.calls == []


def test_a_calibrator_saved_by_the_evaluation_is_the_one_predict_reads(predictor, tmp_path, capsys):
    from evaluation.calibration import main as evaluate

    g = torch.Generator().manual_seed(0)
    for split in ("valid", "test"):
        probs = predictor.predict_batch(torch.randn(300, 3, 16, 16, generator=g), num_samples=20).probs.double()
        np.savez(tmp_path / f"{split}.npz", probs=(probs / probs.sum(1, keepdim=True)).numpy(),
                 labels=torch.multinomial(probs, 1, generator=g).squeeze(1).numpy(), class_names=np.array(FERPLUS))
    calib = tmp_path / "calib.json"
    assert evaluate(["--predictions", str(tmp_path / "test.npz"), "--calibrate-on", str(tmp_path / "valid.npz"),
                     "--out", str(tmp_path / "eval"), "--formats", "png", "--conformal", "0.2",
                     "--conformal-score", "lac", "--save-conformal", str(calib)]) == 0
    write_faces(tmp_path / "faces", [f"{i}.png" for i in range(5)])
    predictor.calls.clear()
    assert main([str(tmp_path / "faces"), "--checkpoint", "x.pt", "--num-samples", "20", "--conformal", str(calib),
                 "--csv", str(tmp_path / "out.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert len(rows) == 5 and all(r["set"].split("|")[0] == r["prediction"] for r in rows)
    assert "80% set {" in capsys.readouterr().out

"""Videos: frames read, faces tracked, one row per frame and face, smoothing columns, the CLI."""
from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.bayes_fer import scenes
from tests.checkpoints import REPO
from tests.conftest import require_shared

cv2 = pytest.importorskip("cv2", reason='video needs pip install "bayes-fer[video]"')

from bayes_fer.faces import find_faces  # noqa: E402
from bayes_fer.video import IoUTracker, iter_frames, predict_video  # noqa: E402
from bayes_fer.faces import Face  # noqa: E402


def detectable_faces(count: int) -> list[np.ndarray]:
    """FER+ faces the detector finds in a still: this test is about reading and tracking."""
    root = require_shared("data", "ferplus")
    out = []
    for face in scenes.fer_faces(root, 40):
        still = scenes.background(np.random.default_rng(0))
        scenes.paste(still, face, (320.0, 240.0), 140, 0.0)
        if len(find_faces(Image.fromarray(still))) == 1:
            out.append(face)
        if len(out) == count:
            return out
    pytest.fail(f"fewer than {count} of 40 FER+ faces were detected in a still")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    frames = scenes.write_clip(path, detectable_faces(2))
    return path, frames


def test_clip_is_read_frame_by_frame(clip):
    path, frames = clip
    seen = list(iter_frames(path))
    assert len(seen) == frames == 300
    assert seen[-1][0] == 299 and seen[-1][1] == pytest.approx(299 / 30)
    assert seen[0][2].shape == (480, 640, 3)


def test_one_row_per_frame_and_face_with_smoothing(clip):
    from bayes_fer.predictive import Predictor

    path, frames = clip
    predictor = Predictor.pretrained(device="cpu")
    rows = predict_video(predictor, path, num_samples=8, smooth=True, progress=False)
    assert len({r["face"] for r in rows}) == 2
    keys = {(r["frame"], r["face"]) for r in rows}
    assert len(keys) == len(rows) == 2 * frames
    names = predictor.class_names
    for r in rows[:: 37]:
        assert sum(r[f"prob/{c}"] for c in names) == pytest.approx(1.0, abs=1e-4)
        assert sum(r[f"smooth_prob/{c}"] for c in names) == pytest.approx(1.0, abs=1e-6)
        for c in names:
            assert r[f"smooth_lo/{c}"] < r[f"smooth_loc/{c}"] < r[f"smooth_hi/{c}"]
            assert r[f"scale/{c}"] > 0
    # Smoothing calms the per-frame read-outs of a face that does not change.
    track = [r for r in rows if r["face"] == rows[0]["face"]]
    c = names[0]
    raw = np.std(np.diff([r[f"loc/{c}"] for r in track]))
    smooth = np.std(np.diff([r[f"smooth_loc/{c}"] for r in track]))
    assert smooth < raw


def test_tracker_keeps_ids_across_small_moves():
    tracker = IoUTracker()
    a, b = Face((0, 0, 100, 100), 5, 0.0), Face((300, 0, 400, 100), 5, 0.0)
    first = [t.id for t in tracker.update([a, b])]
    moved = [Face((310, 5, 410, 105), 5, 0.0), Face((8, 2, 108, 102), 5, 0.0)]
    tracker.update(moved)
    assert first == [0, 1]
    assert {t.id: t.face.box[0] for t in tracker.tracks} == {0: 8, 1: 310}


def test_cli_writes_csv_and_plot(clip, tmp_path):
    path, frames = clip
    proc = subprocess.run([sys.executable, "-m", "bayes_fer.predict", str(path), "--num-samples", "4", "--smooth",
                           "--csv", str(tmp_path / "rows.csv"), "--plot", str(tmp_path / "plot.png"), "--device", "cpu"],
                          capture_output=True, text=True, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((tmp_path / "rows.csv").open()))
    assert len(rows) == 2 * frames
    for key in ("frame", "time", "face", "x0", "y1", "prob/happiness", "loc/neutral", "scale/neutral",
                "smooth_loc/neutral", "smooth_lo/neutral"):
        assert key in rows[0], key
    assert Image.open(tmp_path / "plot.png").width > 400


def test_unreadable_video_is_named(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(ValueError, match="could not open it as a video"):
        list(iter_frames(bad))

import hashlib

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from bayes_fer.data import SceneConfig, SyntheticConfig, load_dataset
from bayes_fer.data.synthetic.actions import ACTION_UNITS, EMOTION_AU, EMOTIONS, sample_votes
from bayes_fer.data.synthetic.render import render_face

STILL = SceneConfig(tilt=0, shift=0, scale=(1, 1), light=0, brightness=(1, 1), noise=0, occlusion=0)


def _digest(img) -> str:
    return hashlib.sha1(np.asarray(img).tobytes()).hexdigest()


def test_samples_carry_mixture_votes_and_argmax_label():
    ds = load_dataset("synthetic", split="valid", size=64)
    assert ds.class_names == EMOTIONS and len(ds) == 64
    batch = default_collate([ds[i] for i in range(16)])
    assert set(batch) == {"image", "label", "index", "votes", "mixture"}
    assert batch["image"].shape == (16, 3, 112, 112) and batch["image"].dtype == torch.float32
    torch.testing.assert_close(batch["mixture"].sum(1), torch.ones(16))
    assert torch.equal(batch["label"], batch["mixture"].argmax(1))
    assert torch.equal(batch["votes"].sum(1), torch.full((16,), 10.0))
    np.testing.assert_array_equal(ds.labels, ds.mixtures.argmax(1))


def test_probability_mode_gives_the_vote_distribution():
    ds = load_dataset("synthetic", split="test", size=4, label_mode="probability")
    item = ds[2]
    torch.testing.assert_close(item["target"], item["votes"] / 10)


def test_deterministic_by_seed_and_nested_by_size():
    a = load_dataset("synthetic", split="train", size=3000)
    b = load_dataset("synthetic", split="train", size=10)
    assert _digest(a.load_image(7)) == _digest(b.load_image(7))
    np.testing.assert_array_equal(a.mixtures[:10], b.mixtures)
    c = load_dataset("synthetic", split="train", size=10, seed=1)
    assert _digest(c.load_image(7)) != _digest(b.load_image(7))


def test_splits_are_disjoint():
    digests = {
        split: {_digest(load_dataset("synthetic", split=split, size=150).load_image(i)) for i in range(150)}
        for split in ("train", "valid", "test")
    }
    assert all(len(d) == 150 for d in digests.values())
    assert not (digests["train"] & digests["valid"]) and not (digests["train"] & digests["test"])
    assert not (digests["valid"] & digests["test"])


def test_default_sizes_and_dominant_mixtures():
    ds = load_dataset("synthetic", split="train")
    assert len(ds) == 20000 and len(load_dataset("synthetic", split="valid")) == 2000
    top = np.sort(ds.mixtures, axis=1)
    assert np.mean(top[:, -1] > 0.6) > 0.75  # mostly one clear emotion
    compound = np.mean((top[:, -1] < 0.65) & (top[:, -2] > 0.25))
    assert 0.08 < compound < 0.25  # and a minority of genuinely compound faces
    assert np.all(np.bincount(ds.labels, minlength=7) > 2000)  # every emotion well represented


def test_votes_follow_the_mixture():
    rng = np.random.default_rng(0)
    mixture = np.tile([0.7, 0.2, 0.1, 0, 0, 0, 0], (4000, 1))
    votes = sample_votes(rng, mixture, 10)
    assert votes.sum(1).tolist() == [10] * 4000
    np.testing.assert_allclose(votes.mean(0) / 10, mixture[0], atol=0.01)


def test_emotion_table_follows_facs_prototypes():
    au = dict(zip(EMOTIONS, EMOTION_AU))
    col = {name: i for i, name in enumerate(ACTION_UNITS)}
    assert au["happiness"][col["AU12"]] == 1 and au["happiness"][col["AU6"]] > 0
    assert au["surprise"][[col["AU1"], col["AU2"], col["AU5"], col["AU26"]]].min() == 1
    assert au["anger"][col["AU4"]] == 1 and au["sadness"][col["AU15"]] == 1 and au["disgust"][col["AU9"]] == 1
    assert not au["neutral"].any()


def _mouth_darkness(au_name: str | None) -> float:
    au = np.zeros(len(ACTION_UNITS))
    if au_name:
        au[ACTION_UNITS.index(au_name)] = 1.0
    img = np.asarray(render_face(au, np.random.default_rng(5), 112, STILL)).astype(float)
    mouth = img[75:100, 35:77].mean(axis=2)
    return float((mouth < 45).mean())


def test_action_units_change_the_face_geometry():
    # The same identity is drawn each time: a jaw drop opens a dark mouth that a still face lacks.
    assert _mouth_darkness("AU26") > 0.08
    assert _mouth_darkness(None) == _mouth_darkness("AU12") == 0.0
    for name in ACTION_UNITS:
        au = np.zeros(len(ACTION_UNITS))
        au[ACTION_UNITS.index(name)] = 1.0
        moved = np.asarray(render_face(au, np.random.default_rng(5), 112, STILL)).astype(float)
        still = np.asarray(render_face(np.zeros(len(ACTION_UNITS)), np.random.default_rng(5), 112, STILL)).astype(float)
        assert (np.abs(moved - still).max(axis=2) > 10).sum() >= 30, f"{name} leaves the face unchanged"


def test_options_reach_the_config_and_unknown_ones_are_named():
    ds = load_dataset("synthetic", split="test", size=5, occlusion=0.0, p_compound=0.0, num_votes=3)
    assert ds.config.scene.occlusion == 0.0 and ds.config.p_compound == 0.0 and ds.votes.sum(1).tolist() == [3] * 5
    with pytest.raises(TypeError, match=r"unknown synthetic option\(s\) \['blur'\]"):
        load_dataset("synthetic", size=5, blur=1)
    with pytest.raises(ValueError, match="positive number"):
        load_dataset("synthetic", size=0)
    assert SyntheticConfig.from_options(noise=0.0).scene.noise == 0.0

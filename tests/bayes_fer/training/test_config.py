"""Training presets: one TrainConfig per dataset, the paper's with published weights."""
from __future__ import annotations

import importlib.util

import pytest

from bayes_fer.training import DATASETS, TrainConfig, preset
from bayes_fer.training.config import PRETRAINED_PRESETS, SCRATCH_PRESETS
from tests.checkpoints import REPO


def _svi_train():
    spec = importlib.util.spec_from_file_location("svi_train", REPO / "scripts" / "svi_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_dataset_has_a_from_scratch_preset_for_itself(dataset):
    config = preset(dataset, pretrained=False)
    assert isinstance(config, TrainConfig) and config.dataset == dataset
    assert config.kl_weight == 0.01, "from scratch, beta = 1 collapses the guide onto the prior"


def test_published_weights_select_the_papers_recipe():
    for dataset, config in PRETRAINED_PRESETS.items():
        assert config.dataset == dataset and config.model == "poster_var"
        assert config.batch_size == 48 and config.epochs == 200 and config.kl_weight == 1.0
    assert preset("ferplus", pretrained=True).lr == 3e-5
    assert preset("rafdb", pretrained=True).lr == 9e-6
    # No published recipe for these: they fall back to training from scratch.
    assert preset("fer2013", pretrained=True) is SCRATCH_PRESETS["fer2013"]


def test_unknown_dataset_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'.*ferplus"):
        preset("mnist", pretrained=False)


def test_command_line_flags_override_the_preset_and_name_the_output_folder():
    svi_train = _svi_train()
    parse = svi_train.build_parser().parse_args
    config = svi_train.config_from_args(parse(["--dataset", "ferplus", "--lr", "1e-3", "--no-layer-embedding"]))
    assert (config.lr, config.layer_embedding) == (1e-3, False)
    assert (config.batch_size, config.kl_weight, config.warmup_steps) == (32, 0.01, 200), "the rest is the preset"
    assert config.out == "runs/ferplus-poster_var_tiny"
    config = svi_train.config_from_args(parse(["--dataset", "ferplus", "--ir50", "ir50.pth", "--out", "x"]))
    assert (config.model, config.lr, config.kl_weight, config.out) == ("poster_var", 3e-5, 1.0, "x")
    assert svi_train.config_from_args(parse([])) == SCRATCH_PRESETS["synthetic"].replace(out="runs/synthetic-poster_var_tiny")

"""The POSTER networks: reference parity, sizes, gradients, checkpoint formats and errors."""
from __future__ import annotations

import importlib.util
import json

import pyro
import pytest
import torch
import torch.nn.functional as F

from bayes_fer import CheckpointError, create_model, list_models
from bayes_fer.models import count_parameters, layers, poster
from bayes_fer.models.convert import ir50_filter_fn, mobilefacenet_filter_fn, poster_checkpoint_filter_fn
from bayes_fer.models.poster import CrossAttention
from guides import create_guide
from tests.conftest import require_shared

KINDS = {"poster_var": "var", "poster_pp": "pp"}


def _reference(kind: str):
    ref_dir = require_shared("reference")
    spec = importlib.util.spec_from_file_location("fixture_weights", ref_dir / "fixture_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shapes = json.loads((ref_dir / f"keys_poster_{kind}.json").read_text())
    fixture = torch.load(ref_dir / f"parity_poster_{kind}.pt", weights_only=False)
    return shapes, module.fixture_state_dict(shapes), fixture


@pytest.fixture(scope="module", params=sorted(KINDS))
def parity(request):
    name = request.param
    shapes, state_dict, fixture = _reference(KINDS[name])
    model = create_model(name, checkpoint=state_dict).eval()
    taps: dict = {}
    with torch.inference_mode():
        loc_taps, log_var_taps = model.head(model.forward_features(fixture["input"], taps))
        loc, log_var = model(fixture["input"])
    return name, shapes, state_dict, fixture, taps, (loc, log_var, loc_taps, log_var_taps)


def test_outputs_match_reference(parity):
    name, _, _, fixture, _, (loc, log_var, loc_taps, _) = parity
    # Both paths: the fast one (cls-only last block) and the all-token one used for taps.
    assert (loc - fixture["loc"]).abs().max() < 2e-5
    assert (loc_taps - fixture["loc"]).abs().max() < 2e-5
    if name == "poster_var":
        assert (log_var - fixture["log_var"]).abs().max() < 2e-5
    else:
        assert log_var is None and fixture["log_var"] is None


def test_every_stage_matches_reference(parity):
    _, _, _, fixture, taps, _ = parity
    for key, expected in fixture["stages"].items():
        got = taps[key]
        if got.shape != expected.shape:  # POSTER++'s PatchEmbed returns tokens, not a map
            got = got.flatten(2).transpose(1, 2)
        err = (got - expected).abs().max().item()
        assert err < 1e-4, f"stage {key}: max abs error {err:.2e}"


def test_winograd_inference_matches_reference(parity, monkeypatch):
    # Winograd serves inference from MIN_TILES tiles (8 images); force it on the fixture's two.
    from bayes_fer.models import winograd

    name, _, state_dict, fixture, _, _ = parity
    monkeypatch.setattr(winograd, "MIN_TILES", 1)
    calls = []
    real = winograd.winograd_conv3x3
    monkeypatch.setattr(winograd, "winograd_conv3x3", lambda *a: calls.append(1) or real(*a))
    model = create_model(name, checkpoint=state_dict).eval()
    taps: dict = {}
    with torch.inference_mode():
        loc = model(fixture["input"])[0]
        model.forward_features(fixture["input"], taps)
    assert calls
    assert (loc - fixture["loc"]).abs().max() < 2e-5  # measured 1.0e-6 (direct kernels: 5.7e-7)
    for key, expected in fixture["stages"].items():
        got = taps[key] if taps[key].shape == expected.shape else taps[key].flatten(2).transpose(1, 2)
        assert (got - expected).abs().max() < 1e-4, key  # worst measured 5.4e-5 (direct: 1.1e-5)


def test_reference_checkpoint_wrapped_and_prefixed(parity):
    name, _, state_dict, fixture, _, (loc, *_rest) = parity
    wrapped = {"state_dict": {f"module.{k}": v for k, v in state_dict.items()}, "optimizer": {}}
    model = create_model(name, checkpoint=wrapped).eval()
    with torch.inference_mode():
        assert torch.equal(model(fixture["input"])[0], loc)


def test_sub_checkpoints_load_into_their_networks(parity, tmp_path):
    name, _, state_dict, _, _, _ = parity
    ir50 = {k[len("ir_back."):]: v for k, v in state_dict.items() if k.startswith("ir_back.")}
    marks = {k[len("face_landback."):]: v for k, v in state_dict.items() if k.startswith("face_landback.")}
    assert len(ir50) == 304 and len(marks) == 333
    torch.save(ir50, tmp_path / "ir50.pth")
    torch.save({"state_dict": marks, "epoch": 1, "acc": 0.0, "best_acc": 0.0, "optimizer": {}}, tmp_path / "mfn.pth.tar")
    model = create_model(name, ir50=tmp_path / "ir50.pth", landmarks=tmp_path / "mfn.pth.tar")
    full = create_model(name, checkpoint=state_dict)
    for key, value in full.state_dict().items():
        if key.startswith(("backbone.", "landmarks.")):
            assert torch.equal(model.state_dict()[key], value), key
    assert set(ir50_filter_fn(ir50)) == {k for k in full.state_dict() if k.startswith("backbone.")}
    assert set(mobilefacenet_filter_fn({"state_dict": marks})) == {
        k for k in full.state_dict() if k.startswith("landmarks.")
    }


def test_unknown_and_missing_keys_are_listed(parity):
    name, _, state_dict, _, _, _ = parity
    extra = dict(state_dict, **{"VIT.mystery.weight": torch.zeros(3)})
    with pytest.raises(CheckpointError, match="VIT.mystery.weight"):
        create_model(name, checkpoint=extra)
    partial = {k: v for k, v in state_dict.items() if not k.startswith("VIT.se_block.")}
    with pytest.raises(CheckpointError, match=r"missing keys: se\.linear1\.bias"):
        create_model(name, checkpoint=partial)


def test_checkpoint_for_other_class_count_is_refused(parity):
    name, shapes, _, _, _, _ = parity
    with pytest.raises(CheckpointError, match="predicts 7 classes but the model was built for 8"):
        create_model(name, num_classes=8, checkpoint=_reference(KINDS[name])[1])


def test_filter_is_pure(parity):
    _, _, state_dict, _, _, _ = parity
    before = list(state_dict)
    poster_checkpoint_filter_fn(state_dict, variational=True)
    assert list(state_dict) == before


@pytest.mark.parametrize(
    "name, total, trainable",
    [("poster_var", 43_763_164, 42_851_932), ("poster_pp", 43_753_941, 42_842_709)],
)
def test_parameter_counts_equal_the_reference_used_parameters(name, total, trainable):
    assert count_parameters(create_model(name)) == (total, trainable)


def test_tiny_model_has_at_most_a_tenth_of_the_flops():
    from bayes_fer.models.info import count_flops

    full, tiny = count_flops(create_model("poster_var")), count_flops(create_model("poster_var_tiny"))
    assert 0 < tiny <= full / 10
    # The reference spends 17.19 GFLOPs; the last ViT block computing the cls row alone saves ~1.8.
    assert 15e9 < full < 16e9


def test_own_checkpoint_round_trip(tmp_path):
    model = create_model("poster_var_tiny", num_classes=5)
    torch.save({"model": model.state_dict()}, tmp_path / "ours.pt")
    again = create_model("poster_var_tiny", num_classes=5, checkpoint=tmp_path / "ours.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value)


def test_gradients_reach_every_trainable_parameter_and_not_the_landmarks():
    # Stochastic depth could drop a whole branch for both samples of this tiny batch.
    model = create_model("poster_var", drop_path=(0.0, 0.0, 0.0)).train()
    marks_before = {k: v.clone() for k, v in model.landmarks.state_dict().items()}
    optimizer = torch.optim.AdamW(p for p in model.parameters() if p.requires_grad)
    for _ in range(2):
        loc, log_var = model(torch.randn(2, 3, 112, 112))
        (loc.square().sum() + log_var.sum()).backward()
        optimizer.step()
        for name, p in model.named_parameters():
            if name.startswith("landmarks."):
                assert not p.requires_grad and p.grad is None, name
            else:
                assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"
        optimizer.zero_grad()
    assert model.landmarks.training is False
    for key, value in model.landmarks.state_dict().items():
        assert torch.equal(value, marks_before[key]), f"frozen landmark buffer {key} changed"


def test_cross_attention_training_path_matches_the_fused_kernel():
    # Training adds the position bias inside a batched product; inference uses the fused kernel.
    torch.manual_seed(0)
    attn = CrossAttention(dim=16, num_heads=2, size=4)
    x, queries = torch.randn(3, 16, 16), torch.randn(3, 16, 16)
    out = attn(x, queries)
    out.square().sum().backward()
    grads = [p.grad.clone() for p in attn.parameters()]
    attn.zero_grad()
    k, v = attn.kv(x).view(3, 16, 2, 2, 8).permute(2, 0, 3, 1, 4).unbind(0)
    q = queries.view(3, 16, 2, 8).transpose(1, 2)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=attn.position_bias().unsqueeze(0))
    expected = attn.proj(expected.transpose(1, 2).reshape(3, 16, 16))
    expected.square().sum().backward()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    for (name, p), grad in zip(attn.named_parameters(), grads):
        torch.testing.assert_close(grad, p.grad, rtol=1e-5, atol=1e-6, msg=f"gradient of {name}")
    with torch.no_grad():
        torch.testing.assert_close(attn(x, queries), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scores_per_chunk", [1 << 21, 40])
def test_biased_attention_gradients_match_finite_differences(monkeypatch, scores_per_chunk):
    # 40 scores per chunk: one image at a time, so the backward pass runs over several chunks.
    monkeypatch.setattr(layers, "SCORES_PER_CHUNK", scores_per_chunk)
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 2, 4, 3, dtype=torch.float64, requires_grad=True) for _ in range(3))
    bias = torch.randn(4, 4, 2, dtype=torch.float64).permute(2, 0, 1).requires_grad_()  # (h, N, N), not contiguous
    assert torch.autograd.gradcheck(layers.biased_attention, (q, k, v, bias))


def test_cpu_inference_in_chunks_equals_the_whole_batch(monkeypatch):
    model = create_model("poster_var_tiny").eval()
    x = torch.randn(5, 3, 112, 112)
    with torch.inference_mode():
        whole = model(x)
        per_image = model.backbone.stem[0].out_channels * 112**2 * 4
        monkeypatch.setattr(poster, "INFERENCE_CHUNK_BYTES", 2 * per_image)  # chunks of 2, 2 and 1
        assert model._inference_chunk(x) == 2
        chunked = model(x)
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert model._inference_chunk(x[:2]) == 0  # a batch that fits runs whole
    with torch.enable_grad():
        assert model._inference_chunk(x) == 0  # training and gradients see the batch whole


def test_features_trace_as_one_graph_inside_the_guide_under_the_elbo_trace():
    # What --compile compiles runs inside the guide's call and Pyro's trace, where a PyroModule's
    # attribute reads become Pyro effects unless the network reads its parts as torch does.
    net = create_model("poster_var_tiny").train()
    guide = create_guide("normal", num_classes=7, feature_dim=net.config.embed_dim, net=net)
    explained = []

    def features_fn(x):
        explained.append(torch._dynamo.explain(net.forward_features)(x))
        return net.forward_features(x)

    guide.features_fn = features_fn
    with pyro.poutine.trace():
        guide(torch.randn(2, 3, 112, 112))
    assert explained[0].graph_count == 1 and explained[0].graph_break_count == 0, explained[0].break_reasons


def test_training_batch_of_one_works():
    model = create_model("poster_var_tiny").train()
    loc, log_var = model(torch.randn(1, 3, 112, 112))
    assert loc.shape == log_var.shape == (1, 7)


def test_224_inputs_are_subsampled_like_the_reference():
    model = create_model("poster_var_tiny").eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        big = model(x)[0]
        small = model(torch.nn.functional.interpolate(x, size=112))[0]
    assert torch.equal(big, small)


def test_network_built_at_a_smaller_side_takes_that_side_and_its_multiples():
    model = create_model("poster_var_tiny", input_size=64).eval()
    assert [stage.attn.size for stage in model.stages] == [16, 8, 4]
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        loc, log_var = model(x)
        assert torch.equal(model(x.repeat_interleave(2, -1).repeat_interleave(2, -2))[0], loc)
    assert loc.shape == log_var.shape == (2, 7)
    with pytest.raises(ValueError, match="side 64 .* got 112x112"):
        model(torch.randn(1, 3, 112, 112))
    with pytest.raises(ValueError, match="multiple of 16"):
        create_model("poster_var_tiny", input_size=60)


def test_training_at_64_builds_and_checkpoints_a_64_network(tmp_path):
    from bayes_fer.training.builder import build_network
    from bayes_fer.training.checks import config_problems
    from bayes_fer.training.config import TrainConfig

    assert build_network(TrainConfig(image_size=64), 8).config.input_size == 64
    assert build_network(TrainConfig(image_size=224), 8).config.input_size == 112
    assert any("image_size must be a multiple of 112" in p for p in config_problems(TrainConfig(image_size=100)))


@pytest.mark.parametrize(
    "shape, match",
    [((2, 1, 112, 112), "expected 3 colour channels, got 1"), ((2, 3, 100, 100), "got 100x100"), ((3, 112, 112), "shape")],
)
def test_bad_inputs_get_clear_errors(shape, match):
    with pytest.raises(ValueError, match=match):
        create_model("poster_var_tiny")(torch.randn(*shape))


def test_unknown_model_and_option():
    with pytest.raises(ValueError, match="registered models: poster_pp, poster_pp_tiny, poster_var, poster_var_tiny"):
        create_model("poster_v3")
    with pytest.raises(TypeError, match="unknown option"):
        create_model("poster_var_tiny", layer_embeddings=False)


def test_ablation_without_layer_embedding_still_applies_fusion_norm():
    model = create_model("poster_var_tiny", layer_embedding=False)
    assert model.level_embeds is None and isinstance(model.fusion_norm, torch.nn.LayerNorm)
    assert set(list_models()) >= {"poster_var", "poster_pp", "poster_var_tiny"}


@pytest.mark.parametrize("name", ["poster_var_tiny", "poster_pp_tiny"])
def test_forward_traces_as_one_graph_for_torch_compile(name):
    # A graph break would make torch.compile fall back to compiling pieces one by one (and hit
    # its recompile limit on the repeated blocks). The bound forward is what --compile compiles.
    net = create_model(name).eval()
    with torch.inference_mode():
        explained = torch._dynamo.explain(net.forward)(torch.randn(2, 3, 224, 224))
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons

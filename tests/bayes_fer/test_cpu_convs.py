"""The CPU training convolutions: Winograd F(4x4, 3x3) and the stride-2 patch product."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bayes_fer import create_model
from bayes_fer.models import im2col, winograd
from bayes_fer.models.im2col import PatchConv2d
from bayes_fer.models.layers import ScratchBuffers, conv_bn
from bayes_fer.models.winograd import WinogradConv2d, winograd_conv3x3


def _channels_last(*shape: int, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, dtype=dtype).contiguous(memory_format=torch.channels_last)


def _conv_and_grads(conv, x: torch.Tensor, w: torch.Tensor, grad_y: torch.Tensor):
    x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
    y = conv(x, w)
    y.backward(grad_y)
    return y.detach(), x.grad, w.grad


@pytest.mark.parametrize("side", [16, 14, 7, 28])
def test_winograd_matches_the_direct_convolution_and_its_gradients(side):
    # 16 fills whole 4x4 blocks; 14, 7 and 28 leave partial blocks at the edges or none.
    x, w = _channels_last(3, 32, side, side), torch.randn(24, 32, 3, 3) / 17
    grad_y = torch.randn(3, 24, side, side)
    expected = _conv_and_grads(lambda a, b: F.conv2d(a.double(), b.double(), padding=1), x, w, grad_y.double())
    got = _conv_and_grads(winograd_conv3x3, x, w, grad_y)
    for name, a, b in zip(("output", "input gradient", "filter gradient"), got, expected):
        assert a.dtype == torch.float32 and a.shape == b.shape
        err = ((a.double() - b).abs().max() / b.abs().max()).item()
        # F(4x4, 3x3) in float32 is good to ~1e-5 of the scale; a wrong transform is off by O(1).
        assert err < 1e-4, f"{name}: relative error {err:.1e}"


def test_winograd_gradients_match_finite_differences():
    x = _channels_last(2, 3, 5, 6, dtype=torch.float64).requires_grad_()
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(winograd_conv3x3, (x, w))


def test_winograd_output_is_channels_last_like_the_direct_kernels():
    y = winograd_conv3x3(_channels_last(2, 8, 14, 14), torch.randn(8, 8, 3, 3))
    assert y.is_contiguous(memory_format=torch.channels_last)


def test_winograd_refuses_other_shapes_and_devices():
    with pytest.raises(ValueError, match=r"\(C_out, C, 3, 3\) filters"):
        winograd_conv3x3(torch.randn(1, 4, 8, 8), torch.randn(4, 4, 5, 5))
    with pytest.raises(ValueError, match="runs on the CPU"):
        winograd_conv3x3(torch.randn(1, 4, 8, 8, device="meta"), torch.randn(4, 4, 3, 3, device="meta"))


def _count_calls(monkeypatch, module, name: str) -> list:
    calls: list = []
    real = getattr(module, name)

    def spy(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(module, name, spy)
    return calls


def test_winograd_conv_runs_where_it_pays_in_training_and_inference(monkeypatch):
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 16)
    monkeypatch.setattr(winograd, "MIN_TILES", 18)
    calls = _count_calls(monkeypatch, winograd, "winograd_conv3x3")
    conv = WinogradConv2d(16, 16).to(memory_format=torch.channels_last)
    x = _channels_last(2, 16, 12, 12)
    direct = F.conv2d(x, conv.weight, padding=1)
    torch.testing.assert_close(conv(x.requires_grad_()), direct, rtol=1e-4, atol=1e-5)
    with torch.inference_mode():
        torch.testing.assert_close(conv(x), direct, rtol=1e-4, atol=1e-5)
    assert len(calls) == 2
    narrow = WinogradConv2d(8, 8)  # fewer channels than MIN_CHANNELS
    x8 = torch.randn(2, 8, 12, 12, requires_grad=True)
    assert torch.equal(narrow(x8), F.conv2d(x8, narrow.weight, padding=1))
    small = x[:1]  # 9 tiles, fewer than MIN_TILES
    assert torch.equal(conv(small), F.conv2d(small, conv.weight, padding=1))
    off = WinogradConv2d(16, 16, fast=False)
    assert torch.equal(off(x), F.conv2d(x, off.weight, padding=1))
    assert len(calls) == 2


def test_batchnorm_folds_into_a_winograd_conv_in_eval(monkeypatch):
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 16)
    monkeypatch.setattr(winograd, "MIN_TILES", 1)
    calls = _count_calls(monkeypatch, winograd, "winograd_conv3x3")
    conv, bn = WinogradConv2d(16, 24), torch.nn.BatchNorm2d(24)
    bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.data.uniform_(0.5, 2)
    bn.eval()
    x = _channels_last(2, 16, 14, 14)
    with torch.no_grad():
        folded = conv_bn(x, conv, bn)
        expected = bn(F.conv2d(x, conv.weight, padding=1))
    assert len(calls) == 1
    torch.testing.assert_close(folded, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("side,bias", [(14, True), (7, False), (28, True)])
def test_patch_conv_matches_the_strided_convolution_and_its_gradients(side, bias, monkeypatch):
    monkeypatch.setattr(im2col, "MIN_OUT_CHANNELS", 1)
    conv = PatchConv2d(24, 40, bias=bias).to(memory_format=torch.channels_last)
    exact = PatchConv2d(24, 40, bias=bias, fast=False).double()
    exact.load_state_dict(conv.state_dict())
    x = _channels_last(3, 24, side, side)
    grad_y = torch.randn(3, 40, (side + 1) // 2, (side + 1) // 2)
    results = []
    for net, dtype in ((conv, torch.float32), (exact, torch.float64)):
        xr = x.to(dtype).detach().requires_grad_()
        y = net(xr)
        y.backward(grad_y.to(dtype))
        results.append([y.detach(), xr.grad, net.weight.grad] + ([net.bias.grad] if bias else []))
    for name, got, expected in zip(("output", "input gradient", "filter gradient", "bias gradient"), *results):
        err = ((got.double() - expected).abs().max() / expected.abs().max()).item()
        assert err < 1e-5, f"{name}: relative error {err:.1e}"


def test_patch_conv_gradients_match_finite_differences(monkeypatch):
    monkeypatch.setattr(im2col, "MIN_OUT_CHANNELS", 1)
    conv = PatchConv2d(3, 4).double()
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, w, b: im2col._PatchConv3x3s2.apply(a, w, b), (x, conv.weight, conv.bias))


def test_patch_conv_runs_only_for_wide_outputs(monkeypatch):
    calls = _count_calls(monkeypatch, im2col._PatchConv3x3s2, "apply")
    x = torch.randn(1, 8, 14, 14, requires_grad=True)
    PatchConv2d(8, 16)(x)  # 16 < MIN_OUT_CHANNELS: direct
    assert not calls
    PatchConv2d(8, im2col.MIN_OUT_CHANNELS)(x)
    assert len(calls) == 1
    with torch.no_grad():
        PatchConv2d(8, im2col.MIN_OUT_CHANNELS)(x)
    assert len(calls) == 1


def test_network_gradients_with_the_cpu_kernels_match_float64(monkeypatch):
    monkeypatch.setattr(winograd, "MIN_TILES", 1)  # two images: too few tiles to pay, but test it
    calls = _count_calls(monkeypatch, winograd, "winograd_conv3x3")
    torch.manual_seed(0)
    fast = create_model("poster_var").train()
    exact = create_model("poster_var", fast_cpu_training=False).train()
    assert fast.state_dict().keys() == exact.state_dict().keys()
    exact.load_state_dict(fast.state_dict())
    exact.double()
    x, y = torch.randn(2, 3, 112, 112), torch.tensor([1, 4])
    grads, losses = [], []
    for net, dtype in ((fast, torch.float32), (exact, torch.float64)):
        torch.manual_seed(1)  # the same DropPath draws
        loss = F.cross_entropy(net(x.to(dtype))[0], y)
        loss.backward()
        losses.append(loss.item())
        grads.append({n: p.grad.double() for n, p in net.named_parameters() if p.grad is not None})
    assert len(calls) == 33  # IR-50's stride-1 convolutions with 128 channels or more
    assert abs(losses[0] - losses[1]) < 1e-5
    assert grads[0].keys() == grads[1].keys()
    diff = sum(((grads[0][n] - g) ** 2).sum() for n, g in grads[1].items()) ** 0.5
    norm = sum((g**2).sum() for g in grads[1].values()) ** 0.5
    # Measured 3.6e-4 (the direct float32 kernels: 2.2e-5): training-mode BatchNorm over two
    # images amplifies the ~1e-5 rounding of each Winograd layer. A wrong transform is O(1).
    assert diff / norm < 2e-3


def test_scratch_buffers_grow_and_are_reused():
    scratch = ScratchBuffers()
    a = scratch.get("tiles", (4, 8), torch.float32)
    b = scratch.get("tiles", (2, 8), torch.float32)
    assert b.data_ptr() == a.data_ptr()  # a smaller request reuses the buffer
    c = scratch.get("tiles", (8, 8), torch.float32)
    assert c.shape == (8, 8) and c.data_ptr() != a.data_ptr()
    assert scratch.get("tiles", (8, 8), torch.float64).dtype == torch.float64
    scratch.clear()
    assert not scratch.buffers


def test_winograd_takes_gradients_in_either_memory_format():
    x = _channels_last(2, 8, 16, 16).requires_grad_()
    w = torch.randn(8, 8, 3, 3, requires_grad=True)
    grad_y = torch.randn(2, 8, 16, 16)  # contiguous: not the output's channels-last layout
    y = winograd_conv3x3(x, w)
    plain = torch.autograd.grad(y, (x, w), grad_y, retain_graph=True)
    last = torch.autograd.grad(y, (x, w), grad_y.contiguous(memory_format=torch.channels_last))
    for a, b in zip(plain, last):
        torch.testing.assert_close(a, b)

import numpy as np
import pytest
import torch
from PIL import Image

from bayes_fer.data.transforms import MEAN, STD, denormalize, eval_transform, to_rgb, train_transform


def _expected(rgb):
    return torch.tensor([(c / 255 - m) / s for c, m, s in zip(rgb, MEAN, STD)])


def test_eval_transform_normalizes_by_hand():
    x = eval_transform(112)(Image.new("RGB", (50, 30), (255, 0, 51)))
    assert x.shape == (3, 112, 112) and x.dtype == torch.float32
    torch.testing.assert_close(x[:, 60, 60], _expected((255, 0, 51)), atol=1e-5, rtol=0)


def test_eval_transform_is_deterministic_and_accepts_tensors():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    t = eval_transform(112)
    a, b = t(Image.fromarray(arr)), t(Image.fromarray(arr))
    assert torch.equal(a, b)
    c = t(torch.from_numpy(arr).permute(2, 0, 1))
    d = t(torch.from_numpy(arr).permute(2, 0, 1).float() / 255)
    torch.testing.assert_close(c, a, atol=0.05, rtol=0)  # PIL vs tensor resampling differ slightly
    torch.testing.assert_close(d, c, atol=0.02, rtol=0)


def test_image_size_224_and_denormalize():
    x = eval_transform(224)(Image.new("RGB", (10, 10), (0, 128, 255)))
    assert x.shape == (3, 224, 224)
    torch.testing.assert_close(denormalize(x)[:, 5, 5], torch.tensor([0.0, 128 / 255, 1.0]), atol=1e-5, rtol=0)


def test_train_transform_is_random_but_shaped():
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (80, 80, 3), dtype=np.uint8))
    t = train_transform(112)
    torch.manual_seed(0)
    outs = [t(img) for _ in range(4)]
    assert all(o.shape == (3, 112, 112) and o.dtype == torch.float32 for o in outs)
    assert not torch.equal(outs[0], outs[1])
    torch.manual_seed(0)
    assert torch.equal(t(img), outs[0])  # randomness comes from torch's generator


def test_train_transform_without_augmentation_equals_eval():
    img = Image.fromarray(np.random.default_rng(2).integers(0, 256, (70, 90, 3), dtype=np.uint8))
    plain = train_transform(112, flip=0, rotation=0, crop_padding=0, jitter=0, erasing=0)
    assert torch.equal(plain(img), eval_transform(112)(img))
    flipped = train_transform(112, flip=1.0, rotation=0, crop_padding=0, jitter=0, erasing=0)
    assert torch.equal(flipped(img), eval_transform(112)(img).flip(-1))


def test_unknown_augmentation_option_is_named():
    with pytest.raises(TypeError, match=r"\['blur'\].*crop_padding"):
        train_transform(112, blur=0.3)
    with pytest.raises(ValueError, match="image_size"):
        eval_transform(0)


@pytest.mark.parametrize(
    "img, pixel",
    [
        (Image.new("L", (4, 4), 77), (77, 77, 77)),
        (Image.new("1", (4, 4), 1), (255, 255, 255)),
        (Image.new("RGBA", (4, 4), (10, 20, 30, 255)), (10, 20, 30)),
        (Image.new("RGBA", (4, 4), (10, 20, 30, 0)), (255, 255, 255)),  # transparent -> white
        (Image.new("LA", (4, 4), (0, 128)), (127, 127, 127)),
        (Image.new("CMYK", (4, 4), (0, 0, 0, 0)), (255, 255, 255)),
    ],
)
def test_to_rgb_pil_modes(img, pixel):
    out = to_rgb(img)
    assert out.mode == "RGB" and out.size == img.size
    assert np.abs(np.asarray(out)[1, 1].astype(int) - pixel).max() <= 1


def test_to_rgb_palette_and_16_bit():
    p = Image.new("P", (4, 4), 3)
    p.putpalette([0, 0, 0] * 3 + [200, 100, 50] + [0, 0, 0] * 252)
    assert tuple(np.asarray(to_rgb(p))[0, 0]) == (200, 100, 50)
    p.info["transparency"] = 3
    assert tuple(np.asarray(to_rgb(p))[0, 0]) == (255, 255, 255)
    arr16 = np.array([[0, 256 * 100], [65535, 256 * 200 + 255]], dtype=np.uint16)
    img16 = Image.fromarray(arr16)
    assert img16.mode == "I;16"
    assert np.asarray(to_rgb(img16))[:, :, 0].tolist() == [[0, 100], [255, 200]]
    f = Image.fromarray(np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32))
    assert np.asarray(to_rgb(f))[:, :, 1].tolist() == [[0, 127], [255, 63]]


def test_to_rgb_tensors():
    grey = torch.full((1, 5, 5), 9, dtype=torch.uint8)
    assert torch.equal(to_rgb(grey), torch.full((3, 5, 5), 9, dtype=torch.uint8))
    rgba = torch.zeros(4, 2, 2, dtype=torch.uint8)
    rgba[3, 0, 0] = 255  # one opaque black pixel, the rest transparent
    out = to_rgb(rgba)
    assert out[:, 0, 0].tolist() == [0, 0, 0] and out[:, 1, 1].tolist() == [255, 255, 255]
    assert to_rgb(torch.rand(6, 6)).shape == (3, 6, 6)
    with pytest.raises(ValueError, match=r"\(C, H, W\) with C in 1..4"):
        to_rgb(torch.zeros(5, 4, 4))
    x = eval_transform(112)(torch.full((4, 8, 8), 255, dtype=torch.uint8))
    torch.testing.assert_close(x[:, 0, 0], _expected((255, 255, 255)), atol=1e-5, rtol=0)

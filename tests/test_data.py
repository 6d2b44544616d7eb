"""tinygrad_edu.data: digits, DataLoader reproducibility/resume, transforms, ten-crop, images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import tinygrad_edu.rng
from tinygrad_edu.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CenterCrop,
    Compose,
    DataLoader,
    GrayToRGB,
    Normalize,
    RandomBrightness,
    RandomCrop,
    RandomHorizontalFlip,
    RandomRotation,
    RandomZoom,
    Resize,
    ResizeShorter,
    ToCHWFloat,
    load_digits,
    load_image,
    ten_crop,
    ten_crop_predict,
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def chw(c: int = 3, h: int = 10, w: int = 12, seed: int = 0) -> np.ndarray:
    return rng(seed).random((c, h, w), dtype=np.float32)


# ----------------------------------------------------------------------------- digits


def test_digits_shapes_dtypes_ranges_and_counts():
    x_train, y_train, x_test, y_test = load_digits()
    assert x_train.shape[1:] == (1, 8, 8) and x_test.shape[1:] == (1, 8, 8)
    assert len(x_train) + len(x_test) == 1797
    assert len(x_train) == len(y_train) and len(x_test) == len(y_test)
    assert len(x_test) == pytest.approx(0.2 * 1797, abs=10)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    for x in (x_train, x_test):
        assert x.min() == 0.0 and x.max() == 1.0
        # pixel counts 0..16 divided by 16
        np.testing.assert_array_equal(x * 16, np.round(x * 16))
    labels = np.concatenate([y_train, y_test])
    assert set(np.unique(labels)) == set(range(10))
    # stratified: each class is in the test set in proportion (the digits have ~180 per class)
    counts = np.bincount(labels)
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), np.round(0.2 * counts))


def test_digits_split_is_deterministic_and_disjoint():
    a = load_digits(seed=3)
    b = load_digits(seed=3)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    c = load_digits(seed=4)
    assert not np.array_equal(a[0], c[0])
    # a partition: train + test together are the 1,797 sklearn samples, each exactly once
    from sklearn.datasets import load_digits as sk_load_digits

    sk = sk_load_digits()
    x_train, y_train, x_test, y_test = a
    split = sorted(
        (int(lab), img.tobytes())
        for lab, img in zip(np.concatenate([y_train, y_test]), np.concatenate([x_train, x_test]))
    )
    full = sorted(
        (int(lab), (img[None] / 16).astype(np.float32).tobytes())
        for lab, img in zip(sk.target, sk.images)
    )
    assert split == full
    # the arrays are fresh copies: writing to them does not change the next call
    x_train[:] = -1
    assert load_digits(seed=3)[0].min() == 0.0


def test_digits_other_fractions():
    x_train, y_train, x_test, y_test = load_digits(test_fraction=0.5, seed=1)
    assert abs(len(x_train) - len(x_test)) <= 10
    x_tr0, _, x_te0, _ = load_digits(test_fraction=0.0)
    assert len(x_tr0) == 1797 and x_te0.shape == (0, 1, 8, 8)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_digits_bad_fraction(bad):
    with pytest.raises(ValueError, match="test_fraction must be in"):
        load_digits(test_fraction=bad)


# ----------------------------------------------------------------------------- DataLoader


def _ids(n: int = 23) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    return x, np.arange(n, dtype=np.int64)


def test_loader_covers_every_sample_once_per_epoch():
    x, y = _ids()
    loader = DataLoader(x, y, batch_size=5, shuffle=True, seed=7)
    assert len(loader) == 5
    for _ in range(3):
        batches = list(loader)
        assert [len(yb) for _, yb in batches] == [5, 5, 5, 5, 3]
        seen = np.concatenate([yb for _, yb in batches])
        np.testing.assert_array_equal(np.sort(seen), y)
        for xb, yb in batches:  # x and y stay paired
            np.testing.assert_array_equal(xb[:, 0], yb)


def test_loader_without_shuffle_is_in_order():
    x, y = _ids(10)
    loader = DataLoader(x, y, batch_size=4)
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in loader]), y)


def test_loader_shuffles_differently_per_epoch_but_reproducibly():
    x, y = _ids(50)
    a = DataLoader(x, y, batch_size=8, shuffle=True, seed=1)
    b = DataLoader(x, y, batch_size=8, shuffle=True, seed=1)
    epochs_a = [np.concatenate([yb for _, yb in a]) for _ in range(3)]
    epochs_b = [np.concatenate([yb for _, yb in b]) for _ in range(3)]
    for ea, eb in zip(epochs_a, epochs_b):
        np.testing.assert_array_equal(ea, eb)
    assert not np.array_equal(epochs_a[0], epochs_a[1])
    assert not np.array_equal(epochs_a[0], y)
    other = DataLoader(x, y, batch_size=8, shuffle=True, seed=2)
    assert not np.array_equal(np.concatenate([yb for _, yb in other]), epochs_a[0])
    np.testing.assert_array_equal(a.order(1), epochs_a[1])


def test_loader_leaves_the_global_generator_alone():
    x, y = rng().random((20, 1, 2, 2), dtype=np.float32), np.arange(20)
    before = tinygrad_edu.rng.get_state()
    for _ in DataLoader(x, y, batch_size=3, shuffle=True, transform=RandomHorizontalFlip()):
        pass
    assert tinygrad_edu.rng.get_state() == before


def test_loader_drop_last():
    x, y = _ids(23)
    loader = DataLoader(x, y, batch_size=5, drop_last=True, shuffle=True)
    assert len(loader) == 4
    batches = list(loader)
    assert len(batches) == 4 and all(len(yb) == 5 for _, yb in batches)
    assert len(np.unique(np.concatenate([yb for _, yb in batches]))) == 20
    assert len(DataLoader(x[:3], y[:3], batch_size=5, drop_last=True)) == 0
    assert len(DataLoader(x[:3], y[:3], batch_size=5)) == 1


def test_loader_resume_with_set_epoch_gives_same_batches():
    x, y = _ids(30)
    aug = Compose([lambda im, r: im + r.normal(size=im.shape).astype(np.float32)])
    ref = DataLoader(x, y, batch_size=4, shuffle=True, seed=5, transform=aug)
    ref_epochs = [list(ref) for _ in range(3)]
    resumed = DataLoader(x, y, batch_size=4, shuffle=True, seed=5, transform=aug)
    resumed.set_epoch(2)
    for (xa, ya), (xb, yb) in zip(ref_epochs[2], list(resumed), strict=True):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)
    assert resumed.epoch == 3
    # mid-epoch: batch 3 of epoch 1 onwards
    resumed.set_epoch(1, 3)
    rest = list(resumed)
    assert len(rest) == len(ref) - 3
    for (xa, ya), (xb, yb) in zip(ref_epochs[1][3:], rest, strict=True):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)


def test_loader_state_dict_round_trip_mid_epoch():
    x, y = _ids(30)
    ref = DataLoader(x, y, batch_size=4, shuffle=True, seed=9)
    list(ref)
    ref_epoch1 = [yb for _, yb in ref]
    run = DataLoader(x, y, batch_size=4, shuffle=True, seed=9)
    list(run)
    it = iter(run)
    first = [next(it)[1] for _ in range(3)]
    state = run.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert int(state["epoch"]) == 1 and int(state["batch"]) == 3
    fresh = DataLoader(x, y, batch_size=4, shuffle=True, seed=0)
    fresh.load_state_dict(state)
    assert fresh.seed == 9
    rest = [yb for _, yb in fresh]
    for a, b in zip(ref_epoch1, first + rest, strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(fresh.state_dict()["epoch"]) == 2 and int(fresh.state_dict()["batch"]) == 0
    with pytest.raises(ValueError, match="different dataset size"):
        DataLoader(x[:10], y[:10], batch_size=4).load_state_dict(state)


def test_loader_augmented_epochs_are_reproducible_and_differ():
    x_train, y_train, _, _ = load_digits()
    x, y = x_train[:40], y_train[:40]
    aug = Compose([Resize(16), RandomRotation(15), RandomZoom((0.9, 1.1)), RandomBrightness(0.1)])
    a = DataLoader(x, y, batch_size=16, shuffle=True, seed=3, transform=aug)
    b = DataLoader(x, y, batch_size=16, shuffle=True, seed=3, transform=aug)
    a0, a1 = list(a), list(a)
    b0 = list(b)
    assert a0[0][0].shape == (16, 1, 16, 16) and a0[0][0].dtype == np.float32
    for (xa, ya), (xb, yb) in zip(a0, b0):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    # same samples, different augmentation in the next epoch: compare sample 0's two views
    pos0 = [np.flatnonzero(np.concatenate([yb for _, yb in e]) == y[0]) for e in (a0, a1)]
    view0 = np.concatenate([xb for xb, _ in a0])[pos0[0]]
    view1 = np.concatenate([xb for xb, _ in a1])[pos0[1]]
    assert view0.shape == view1.shape and not np.allclose(view0, view1)


def test_loader_accepts_list_of_images():
    images = [np.full((1, 3, 3), i, np.float32) for i in range(5)]
    xb, yb = next(iter(DataLoader(images, np.arange(5), batch_size=5)))
    assert xb.shape == (5, 1, 3, 3)
    np.testing.assert_array_equal(xb[:, 0, 0, 0], yb)


def test_loader_bad_inputs():
    x, y = _ids(10)
    with pytest.raises(ValueError, match="x and y must have the same length"):
        DataLoader(x, y[:9], batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        DataLoader(x, y, batch_size=0)
    with pytest.raises(ValueError, match="batch_size must be an int"):
        DataLoader(x, y, batch_size=2.5)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        DataLoader(x, y, batch_size=2, seed=-1)
    with pytest.raises(ValueError, match="need epoch >= 0"):
        DataLoader(x, y, batch_size=2).set_epoch(0, 99)


# ----------------------------------------------------------------------------- transforms


def test_flip_twice_is_identity_and_mirrors():
    img = chw()
    flip = RandomHorizontalFlip(p=1.0)
    once = flip(img, rng())
    np.testing.assert_array_equal(once, img[:, :, ::-1])
    np.testing.assert_array_equal(flip(once, rng()), img)
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(img, rng()), img)
    r = rng(1)
    flipped = [not np.array_equal(RandomHorizontalFlip()(img, r), img) for _ in range(200)]
    assert 60 < sum(flipped) < 140


def test_center_crop_equals_slice():
    img = np.arange(3 * 10 * 12, dtype=np.float32).reshape(3, 10, 12)
    out = CenterCrop(6)(img, rng())
    np.testing.assert_array_equal(out, img[:, 2:8, 3:9])
    np.testing.assert_array_equal(CenterCrop((4, 5))(img), img[:, 3:7, 3:8])
    hwc = np.moveaxis(img, 0, -1)
    np.testing.assert_array_equal(CenterCrop(6, layout="HWC")(hwc), hwc[2:8, 3:9])


def test_random_crop_is_a_slice_and_covers_positions():
    img = np.arange(3 * 10 * 12, dtype=np.float32).reshape(3, 10, 12)
    r = rng(0)
    tops_lefts = set()
    for _ in range(300):
        out = RandomCrop(8)(img, r)
        assert out.shape == (3, 8, 8)
        top, left = divmod(int(out[0, 0, 0]), 12)
        np.testing.assert_array_equal(out, img[:, top : top + 8, left : left + 8])
        tops_lefts.add((top, left))
    assert tops_lefts == {(t, s) for t in range(3) for s in range(5)}
    np.testing.assert_array_equal(RandomCrop((10, 12))(img, r), img)


def test_resize_shorter_keeps_aspect_ratio():
    for h, w in [(300, 451), (500, 375), (256, 256), (100, 80)]:
        img = rng().integers(0, 256, (3, h, w), dtype=np.uint8)
        out = ResizeShorter(256)(img, rng())
        assert min(out.shape[1:]) == 256 and out.shape[0] == 3 and out.dtype == np.uint8
        assert abs(max(out.shape[1:]) - max(h, w) * 256 / min(h, w)) <= 1
        assert (out.shape[1] >= out.shape[2]) == (h >= w)
    hwc = rng().integers(0, 256, (60, 90, 3), dtype=np.uint8)
    pil = ResizeShorter(30)(Image.fromarray(hwc))  # PIL in, PIL out: (width, height)
    assert isinstance(pil, Image.Image) and pil.size == (45, 30)
    assert ResizeShorter(30, layout="HWC")(hwc).shape == (30, 45, 3)
    flt = rng().random((3, 40, 20)).astype(np.float32)
    out = ResizeShorter(10)(flt)
    assert out.shape == (3, 20, 10) and out.dtype == np.float32
    # a constant image stays that constant (float resizing is not quantised)
    np.testing.assert_allclose(ResizeShorter(7)(np.full((2, 9, 13), 0.3, np.float32)), 0.3)
    assert ResizeShorter(8, layout="CHW")(chw(3, 16, 32)).shape == (3, 8, 16)


def test_resize_float_per_channel():
    x = load_digits()[0][:1][0]
    out = Resize(32)(x, rng())
    assert out.shape == (1, 32, 32) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0 + 1e-6
    assert Resize((63, 40))(chw(3, 8, 8)).shape == (3, 63, 40)
    const = np.stack([np.full((8, 8), v, np.float32) for v in (0.1, 0.5, 0.9)])
    np.testing.assert_allclose(Resize(20)(const)[:, 5, 7], [0.1, 0.5, 0.9], atol=1e-6)
    u8 = np.full((5, 5, 3), 200, np.uint8)
    out_u8 = Resize(10, layout="HWC")(u8)
    assert out_u8.shape == (10, 10, 3) and out_u8.dtype == np.uint8 and (out_u8 == 200).all()


def test_gray_to_rgb_repeats():
    g = chw(1, 5, 6)
    out = GrayToRGB()(g, rng())
    assert out.shape == (3, 5, 6)
    for c in range(3):
        np.testing.assert_array_equal(out[c], g[0])
    rgb = chw(3)
    np.testing.assert_array_equal(GrayToRGB()(rgb), rgb)


def test_to_chw_float():
    img = rng().integers(0, 256, (4, 5, 3), dtype=np.uint8)
    out = ToCHWFloat()(img, rng())
    assert out.shape == (3, 4, 5) and out.dtype == np.float32
    np.testing.assert_allclose(out * 255, np.moveaxis(img, -1, 0), atol=1e-4)
    assert ToCHWFloat()(np.zeros((4, 5), np.uint8)).shape == (1, 4, 5)
    assert ToCHWFloat()(Image.fromarray(img)).shape == (3, 4, 5)


def test_normalize_then_inverse():
    img = chw()
    norm = Normalize(IMAGENET_MEAN, IMAGENET_STD)
    out = norm(img, rng())
    np.testing.assert_allclose(out[1], (img[1] - 0.456) / 0.224, rtol=1e-5)
    np.testing.assert_allclose(norm.inverse(out), img, atol=1e-6)
    np.testing.assert_allclose(Normalize(0.5, 0.25)(img), (img - 0.5) / 0.25, rtol=1e-5)


def test_rotation_exact_angles_and_range():
    a = chw(2, 9, 9)
    np.testing.assert_allclose(RandomRotation((90, 90))(a, rng()), np.rot90(a, 1, axes=(1, 2)))
    np.testing.assert_allclose(RandomRotation((180, 180))(a, rng()), a[:, ::-1, ::-1])
    np.testing.assert_allclose(RandomRotation(0)(a, rng()), a)
    out = RandomRotation(30, fill=-1.0)(a, rng(2))
    assert out.shape == a.shape and out.dtype == np.float32
    assert RandomRotation(10).degrees == (-10.0, 10.0)


def test_zoom_matches_affine_about_centre():
    ramp = np.tile(np.arange(16, dtype=np.float32), (1, 16, 1))
    np.testing.assert_allclose(RandomZoom((1, 1))(ramp, rng()), ramp)
    out = RandomZoom((2, 2))(ramp, rng())
    # column j samples the input at (j + 0.5 - 8) / 2 + 8 (pixel centres at i + 0.5)
    expect = [(j + 0.5 - 8) / 2 + 8 - 0.5 for j in range(4, 12)]
    np.testing.assert_allclose(out[0, 5, 4:12], expect, atol=1e-5)
    out = RandomZoom((0.5, 0.5), fill=-1.0)(ramp, rng())
    # zoomed out: column j samples 2 j - 7 + 0.5 - 0.5; the border comes from outside (fill)
    np.testing.assert_allclose(out[0, 8, 6:10], [2 * j - 7.5 for j in range(6, 10)], atol=1e-5)
    assert out[0, 0, 0] == -1.0 and out[0, 8, 0] == -1.0


def test_brightness_adds_one_offset_and_clips():
    img = np.full((3, 4, 4), 0.5, np.float32)
    out = RandomBrightness(0.2)(img, rng(0))
    offset = out - img
    assert np.allclose(offset, offset.flat[0]) and 0 < abs(offset.flat[0]) <= 0.2
    assert RandomBrightness(5.0)(img, rng(1)).max() <= 1.0
    assert RandomBrightness(5.0)(img, rng(1)).min() >= 0.0
    with pytest.raises(ValueError, match="expects a float image"):
        RandomBrightness(0.1)(np.zeros((3, 2, 2), np.uint8), rng())


def test_random_transforms_are_reproducible_from_rng():
    a = chw(3, 20, 20)
    t = Compose(
        [
            RandomCrop(16),
            RandomHorizontalFlip(),
            RandomRotation(20),
            RandomZoom(),
            Normalize(0.5, 0.2),
        ]
    )
    np.testing.assert_array_equal(t(a, rng(4)), t(a, rng(4)))
    assert not np.array_equal(t(a, rng(4)), t(a, rng(5)))


def test_alexnet_pipeline_shapes():
    img = Image.fromarray(rng().integers(0, 256, (300, 400, 3), dtype=np.uint8))
    train = Compose(
        [
            ResizeShorter(256),
            CenterCrop(256),
            RandomCrop(227),
            RandomHorizontalFlip(),
            ToCHWFloat(),
            Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    out = train(img, rng())
    assert out.shape == (3, 227, 227) and out.dtype == np.float32


def test_transform_errors():
    with pytest.raises(ValueError, match="crop 12x12 is larger than the image 10x12"):
        CenterCrop(12)(chw(3, 10, 12))
    with pytest.raises(ValueError, match="larger than the image"):
        RandomCrop(13)(chw(3, 10, 12), rng())
    with pytest.raises(ValueError, match="expects one CHW image with 3 dimensions"):
        RandomHorizontalFlip()(np.zeros((2, 3, 4, 5)), rng())
    with pytest.raises(ValueError, match="expects one CHW image with 3 dimensions"):
        Resize(4)(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="expects a CHW image with 1 \\(or 3\\) channels"):
        GrayToRGB()(chw(2))
    with pytest.raises(ValueError, match="mean has 3 values but the image has 2 channels"):
        Normalize(IMAGENET_MEAN, IMAGENET_STD)(chw(2))
    with pytest.raises(ValueError, match="std > 0"):
        Normalize(0.5, 0.0)
    with pytest.raises(ValueError, match="looks like CHW"):
        ResizeShorter(8, layout="HWC")(chw(3, 16, 16))
    with pytest.raises(ValueError, match="layout must be 'CHW' or 'HWC'"):
        CenterCrop(2, layout="NCHW")
    with pytest.raises(ValueError, match="size must be positive"):
        Resize(0)
    with pytest.raises(ValueError, match="p must be in"):
        RandomHorizontalFlip(p=1.5)
    with pytest.raises(ValueError, match="0 < low <= high"):
        RandomZoom((1.2, 1.1))
    with pytest.raises(ValueError, match="expects a uint8 or float image"):
        ToCHWFloat()(np.zeros((2, 2, 3), np.int32))


# ----------------------------------------------------------------------------- ten-crop


def test_ten_crop_slices_and_mirrors():
    img = np.arange(2 * 7 * 9, dtype=np.float32).reshape(2, 7, 9)
    crops = ten_crop(img, 4)
    assert crops.shape == (10, 2, 4, 4)
    expect = [
        img[:, 0:4, 0:4],
        img[:, 0:4, 5:9],
        img[:, 3:7, 0:4],
        img[:, 3:7, 5:9],
        img[:, 1:5, 2:6],
    ]
    for k, e in enumerate(expect):
        np.testing.assert_array_equal(crops[k], e)
        np.testing.assert_array_equal(crops[k + 5], e[:, :, ::-1])
    np.testing.assert_array_equal(crops[4], CenterCrop(4)(img))
    with pytest.raises(ValueError, match="larger than the image"):
        ten_crop(img, 8)


def test_ten_crop_predict_averages_softmax():
    images = rng().random((3, 2, 7, 9), dtype=np.float32)
    weights = rng(1).normal(size=(2 * 4 * 4, 5))
    calls = []

    def predict(xb: np.ndarray) -> np.ndarray:
        calls.append(xb.shape)
        assert xb.dtype == np.float32
        return xb.reshape(len(xb), -1) @ weights

    probs = ten_crop_predict(predict, images, 4, batch_size=2)
    assert probs.shape == (3, 5) and calls == [(20, 2, 4, 4), (10, 2, 4, 4)]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    for i, img in enumerate(images):
        s = ten_crop(img, 4).reshape(10, -1) @ weights
        p = np.exp(s - s.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        np.testing.assert_allclose(probs[i], p.mean(0), rtol=1e-5)
        raw = ten_crop_predict(predict, images[i : i + 1], 4, softmax=False)
        np.testing.assert_allclose(raw[0], s.mean(0), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="predict_fn must return \\(batch, num_classes\\)"):
        ten_crop_predict(lambda xb: xb.sum(), images, 4)


# ----------------------------------------------------------------------------- files


def test_load_image_round_trip_and_errors(tmp_path):
    img = rng().integers(0, 256, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (6, 8, 3)
    np.testing.assert_array_equal(out, img)
    Image.fromarray(img[:, :, 0]).save(tmp_path / "g.png")
    gray = load_image(str(tmp_path / "g.png"))
    assert gray.shape == (6, 8, 3)
    np.testing.assert_array_equal(gray[:, :, 2], img[:, :, 0])
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read"):
        load_image(tmp_path / "bad.jpg")


def test_digits_read_from_scikit_learns_file_equal_its_loader(monkeypatch):
    """The fast path (the CSV scikit-learn ships, no sklearn import) and the fallback (its
    loader, where the file is not found) give the same arrays."""
    from tinygrad_edu import data

    data._digits_raw.cache_clear()
    fast = data._digits_raw()
    monkeypatch.setattr(data, "_digits_file", lambda: None)
    data._digits_raw.cache_clear()
    try:
        slow = data._digits_raw()
    finally:
        data._digits_raw.cache_clear()
    for a, b in zip(fast, slow):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)

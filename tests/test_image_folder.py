"""ImageFolder (torchvision's convention, every file kind converted to RGB, bad files reported
by path), the one transform layout (CHW arrays or PIL images), and the digits folder demo."""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
import pytest
from PIL import Image

from tinygrad_edu.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CenterCrop,
    Compose,
    DataLoader,
    ImageFolder,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    Resize,
    ResizeShorter,
    Subset,
    ToCHWFloat,
    stratified_split,
    write_digits_folder,
)


def import_torchvision():
    """torchvision, importable beside a CPU torch once its C++ op schemas exist (its wheel's
    extension does not load there); skips the test without torch/torchvision."""
    torch = pytest.importorskip("torch")
    for name in ("nms", "qnms"):
        try:
            torch.library.define(
                f"torchvision::{name}",
                "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
            )
        except RuntimeError:
            pass  # defined already (an earlier test)
    try:
        import torchvision
    except Exception as e:  # not installed, or its extension fails in another way
        pytest.skip(f"torchvision unavailable: {e}")
    return torchvision


def pixels(seed: int, h: int = 12, w: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save(path, image: Image.Image, **kw) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path, **kw)
    return str(path)


def three_classes(root) -> None:
    save(root / "dog" / "b.png", Image.fromarray(pixels(0)))
    save(root / "dog" / "a.JPG", Image.fromarray(pixels(1)), format="JPEG")
    save(root / "cat" / "z.webp", Image.fromarray(pixels(2)), format="WEBP")
    save(root / "cat" / "inner" / "c.bmp", Image.fromarray(pixels(3)))
    save(root / "bird" / "x.png", Image.fromarray(pixels(4)))
    (root / "bird" / "notes.txt").write_text("not an image")
    (root / "bird" / ".DS_Store").write_bytes(b"\0")


def test_classes_samples_and_targets_follow_torchvision(tmp_path):
    three_classes(tmp_path)
    with pytest.warns(UserWarning, match=r"ignored 1 file.*\.txt: 1.*notes\.txt"):
        data = ImageFolder(tmp_path)
    assert data.classes == ["bird", "cat", "dog"]
    assert data.class_to_idx == {"bird": 0, "cat": 1, "dog": 2}
    assert data.find_classes(tmp_path) == (data.classes, data.class_to_idx)
    names = [os.path.relpath(p, tmp_path) for p, _ in data.samples]
    assert names == ["bird/x.png", "cat/z.webp", "cat/inner/c.bmp", "dog/a.JPG", "dog/b.png"]
    assert data.targets == [0, 1, 1, 2, 2] and data.imgs == data.samples and len(data) == 5
    image, target = data[4]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and target == 2
    np.testing.assert_array_equal(np.asarray(image), pixels(0))
    tv = import_torchvision()
    theirs = tv.datasets.ImageFolder(str(tmp_path))
    assert theirs.classes == data.classes and theirs.class_to_idx == data.class_to_idx
    assert theirs.samples == data.samples
    for i in range(len(data)):
        np.testing.assert_array_equal(np.asarray(theirs[i][0]), np.asarray(data[i][0]))


def test_every_image_mode_comes_out_rgb(tmp_path):
    rgb = pixels(5)
    gray = Image.fromarray(rgb[:, :, 0])
    save(tmp_path / "k" / "gray.png", gray)
    save(tmp_path / "k" / "cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), format="JPEG")
    palette = Image.fromarray(rgb).convert("P")
    palette.info["transparency"] = 0
    save(tmp_path / "k" / "palette.png", palette, transparency=0)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    save(tmp_path / "k" / "rgba.png", Image.fromarray(rgba))
    save(tmp_path / "j" / "bilevel.bmp", gray.convert("1"))
    data = ImageFolder(tmp_path, transform=ToCHWFloat())
    for i, (path, _) in enumerate(data.samples):
        chw, _ = data[i]
        assert chw.shape == (3, 12, 16) and chw.dtype == np.float32, path
    by_name = {os.path.basename(p): i for i, (p, _) in enumerate(data.samples)}
    gray_chw = data[by_name["gray.png"]][0]
    np.testing.assert_array_equal(gray_chw[0], gray_chw[2])
    np.testing.assert_allclose(gray_chw[1] * 255, rgb[:, :, 0], atol=1e-4)
    # RGBA: the colour stays, alpha is dropped (as torchvision's loader does)
    np.testing.assert_allclose(data[by_name["rgba.png"]][0] * 255, np.moveaxis(rgb, -1, 0), 1e-5)
    # CMYK JPEG: decoded to RGB close to the original (JPEG is lossy)
    cmyk = data[by_name["cmyk.jpg"]][0] * 255
    assert np.abs(cmyk - np.moveaxis(rgb, -1, 0)).mean() < 40


def test_unreadable_files_raise_with_the_path_or_are_skipped(tmp_path):
    three_classes(tmp_path)
    (tmp_path / "cat" / "garbage.png").write_bytes(b"this is no PNG")
    good = io.BytesIO()
    Image.fromarray(pixels(6, 64, 64)).save(good, format="JPEG")
    (tmp_path / "dog" / "truncated.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    warnings.simplefilter("ignore")
    with pytest.raises(ValueError, match=r"garbage\.png.*Fix: delete or replace.*on_error='skip'"):
        ImageFolder(tmp_path)
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable file.*garbage\.png"):
        data = ImageFolder(tmp_path, transform=Compose([Resize(8), ToCHWFloat()]), on_error="skip")
    assert [os.path.basename(p) for p, _ in data.skipped] == ["garbage.png"]
    names = [os.path.basename(p) for p, _ in data.samples]
    assert "garbage.png" not in names and "truncated.jpg" in names
    bad = names.index("truncated.jpg")
    with pytest.warns(UserWarning, match=r"skipped unreadable .*truncated\.jpg.*1 unreadable"):
        image, target = data[bad]
    stand_in = (bad + 1) % len(data)  # the next sample stands in
    np.testing.assert_array_equal(image, data[stand_in][0])
    assert target == data[stand_in][1]
    # a whole epoch in workers gets through
    batches = list(DataLoader(data, batch_size=2, num_workers=2))
    assert sum(len(y) for _, y in batches) == len(data)
    # decoding up front finds the truncated file too, before any epoch starts
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable.*garbage\.png.*truncated\.jpg"):
        full = ImageFolder(tmp_path, on_error="skip", verify="decode")
    assert len(full) == len(data) - 1
    with pytest.raises(ValueError, match=r"2 file\(s\).*truncated\.jpg"):
        ImageFolder(tmp_path, verify="decode")
    strict = ImageFolder(tmp_path, transform=ToCHWFloat(), on_error="raise", verify=False)
    index = [os.path.basename(p) for p, _ in strict.samples].index("truncated.jpg")
    with pytest.raises(ValueError, match=r"cannot decode .*truncated\.jpg.*class 'dog'.*Fix"):
        strict[index]


def test_bad_folders_get_errors_that_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        ImageFolder(tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        ImageFolder(tmp_path / "file.png")
    with pytest.raises(FileNotFoundError, match=r"no class sub-folders \(it holds 1 image"):
        ImageFolder(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no class sub-folders.*root/cat/1.jpg"):
        ImageFolder(empty)
    save(tmp_path / "two" / "a" / "1.png", Image.fromarray(pixels(0)))
    (tmp_path / "two" / "b").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no image files .*'b'.*allow_empty=True"):
        ImageFolder(tmp_path / "two")
    with pytest.warns(UserWarning, match="no images"):
        kept = ImageFolder(tmp_path / "two", allow_empty=True)
    assert kept.classes == ["a", "b"] and len(kept) == 1
    with pytest.raises(ValueError, match="on_error must be"):
        ImageFolder(tmp_path / "two", on_error="ignore")


def test_stratified_split_and_subset():
    targets = [0] * 10 + [1] * 5 + [2] * 2 + [3]
    train, val = stratified_split(targets, 0.2, seed=0)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(18))
    counts = np.bincount(np.asarray(targets)[val], minlength=4)
    np.testing.assert_array_equal(counts, [2, 1, 1, 0])  # >= 1 per class of 2+, never all
    again, _ = stratified_split(targets, 0.2, seed=0)
    np.testing.assert_array_equal(train, again)
    sub = Subset(list(zip(range(18), targets)), val)
    assert len(sub) == len(val) and sub[0] == (val[0], targets[val[0]])
    with pytest.raises(ValueError, match="val_fraction must be in"):
        stratified_split(targets, 1.0)


# ----------------------------------------------------------------------------- one layout


def test_pil_and_chw_paths_give_the_same_pixels():
    hwc = pixels(7, 37, 53)
    chw = np.ascontiguousarray(np.moveaxis(hwc, -1, 0))
    steps = [ResizeShorter(20), CenterCrop((18, 24)), RandomCrop(14), RandomHorizontalFlip(p=1)]
    pil_out = Compose([*steps, ToCHWFloat()])(Image.fromarray(hwc), np.random.default_rng(3))
    chw_out = Compose(steps)(chw, np.random.default_rng(3))
    assert chw_out.shape == (3, 14, 14) and chw_out.dtype == np.uint8
    np.testing.assert_array_equal(pil_out, chw_out / np.float32(255))


def test_an_hwc_array_is_refused_with_the_fix():
    hwc = pixels(8, 30, 40)
    for transform in (ResizeShorter(16), Resize(16), CenterCrop(8), RandomCrop(8)):
        with pytest.raises(ValueError, match="looks like HWC.*ToCHWFloat"):
            transform(hwc, np.random.default_rng(0))
    with pytest.raises(ValueError, match="looks like HWC"):
        RandomHorizontalFlip(p=1)(hwc)
    with pytest.raises(ValueError, match="works on CHW arrays, not PIL images"):
        Normalize(IMAGENET_MEAN, IMAGENET_STD)(Image.fromarray(hwc))
    # the explicit old spelling still works
    assert CenterCrop(8, layout="HWC")(hwc).shape == (8, 8, 3)
    np.testing.assert_array_equal(RandomHorizontalFlip(1, layout="HWC")(hwc), hwc[:, ::-1])


def test_resize_shorter_and_crops_equal_torchvision():
    tv = import_torchvision()
    torch = pytest.importorskip("torch")
    t = tv.transforms
    for h, w in [(300, 451), (451, 300), (256, 256), (97, 131)]:
        image = Image.fromarray(pixels(h, h, w))
        ours = Compose([ResizeShorter(64), CenterCrop(56), ToCHWFloat()])(image)
        theirs = t.Compose([t.Resize(64), t.CenterCrop(56), t.ToTensor()])(image)
        np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-6)
    chw = torch.rand(3, 30, 40)
    np.testing.assert_allclose(
        ResizeShorter(15)(chw.numpy()),
        t.Resize(15, antialias=True)(chw).numpy(),
        atol=2e-2,  # Pillow's float filter vs torch's: same bilinear, different arithmetic
    )


# ----------------------------------------------------------------------------- digits demo


def test_write_digits_folder_round_trips(tmp_path):
    counts = write_digits_folder(tmp_path, per_class=3, size=16)
    assert counts == {"train": 30, "val": 30}
    train = ImageFolder(tmp_path / "train", transform=ToCHWFloat())
    assert train.classes == [str(d) for d in range(10)] and len(train) == 30
    assert np.bincount(train.targets).tolist() == [3] * 10
    image, _ = train[0]
    assert image.shape == (3, 16, 16) and 0.0 <= image.min() and image.max() <= 1.0
    assert not any(name.endswith(".tmp") for _, _, f in os.walk(tmp_path) for name in f)

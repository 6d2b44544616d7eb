"""Image transforms and the AlexNet paper's ten-crop test-time evaluation (re-exported by
`tinygrad_edu.data`, where the layout rule is explained).

One layout, torchvision's: arrays are CHW (uint8 or float); PIL images go through every
geometric transform and stay PIL images until `ToCHWFloat` (the bridge, like `ToTensor`);
`Normalize` and `RandomBrightness` take CHW float only. An HWC array given to a CHW transform
is refused with the fix; `layout="HWC"` on the geometric transforms is kept for older code.

A transform is called as `transform(image, rng)`; random ones draw from `rng`, or from the
global generator (`tinygrad_edu.manual_seed`, set per sample by `DataLoader`) when it is None.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, Protocol

import numpy as np
from PIL import Image

from .errors import op_error
from .rng import generator as _global_generator

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CenterCrop",
    "Compose",
    "GrayToRGB",
    "Normalize",
    "RandomBrightness",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomRotation",
    "RandomZoom",
    "Resize",
    "ResizeShorter",
    "ToCHWFloat",
    "Transform",
    "ten_crop",
    "ten_crop_predict",
]

Layout = Literal["CHW", "HWC"]
Size = int | tuple[int, int]

#: Per-channel RGB mean and std of ImageNet in [0, 1] (the torchvision values), for `Normalize`.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Transform(Protocol):
    """What `Compose` and `DataLoader(transform=...)` call: one image in, one image out."""

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray: ...


# ----------------------------------------------------------------------------- helpers


def _pair(op: str, size: Size) -> tuple[int, int]:
    """`size` as (height, width): an int means a square."""
    if isinstance(size, int | np.integer) and not isinstance(size, bool):
        hw = (int(size), int(size))
    elif isinstance(size, tuple | list) and len(size) == 2:
        hw = (int(size[0]), int(size[1]))
    else:
        raise op_error(op, "size must be an int or (height, width)", repr(size), "pass e.g. 227")
    if hw[0] < 1 or hw[1] < 1:
        raise op_error(op, "size must be positive", repr(size), "pass e.g. 227")
    return hw


def _as_array(image: np.ndarray | Image.Image) -> np.ndarray:
    """A PIL image as its HWC (or HW) uint8 array; arrays pass through."""
    return np.asarray(image)


def _is_pil(image: object) -> bool:
    return isinstance(image, Image.Image)


def _array_only(op: str, image: np.ndarray | Image.Image) -> np.ndarray:
    """`image` as an array for a transform that works on CHW arrays only."""
    if _is_pil(image):
        raise op_error(
            op,
            "works on CHW arrays, not PIL images",
            f"PIL image mode {image.mode!r} size {image.size}",
            f"put ToCHWFloat() before {op}",
        )
    return np.asarray(image)


def _check_layout(op: str, layout: str) -> None:
    if layout not in ("CHW", "HWC"):
        raise op_error(op, "layout must be 'CHW' or 'HWC'", repr(layout), "pass layout='CHW'")


def _check_ndim(op: str, image: np.ndarray, layout: str = "CHW") -> None:
    """One 3-D image in `layout`; an array that is plainly the other layout (a channel axis of
    1, 3 or 4 at the wrong end, more than 4 at the right one) is refused with the fix."""
    if image.ndim != 3:
        example = "(3, 227, 227)" if layout == "CHW" else "(256, 256, 3)"
        raise op_error(
            op,
            f"expects one {layout} image with 3 dimensions",
            f"shape {image.shape}",
            f"pass a single {layout} image such as {example}; for a gray (H, W) array add a "
            "channel axis",
        )
    first, last = image.shape[0], image.shape[2]
    if layout == "CHW" and last in (1, 3, 4) and first > 4:
        raise op_error(
            op,
            "the image looks like HWC but transforms take CHW arrays (or PIL images)",
            f"shape {image.shape}",
            "pass the PIL image itself, or ToCHWFloat() first (HWC uint8 -> CHW float32), or "
            f"np.moveaxis(image, -1, 0); {op}(..., layout='HWC') is kept for older code",
        )
    if layout == "HWC" and first in (1, 3, 4) and last > 4:
        raise op_error(
            op,
            "the image looks like CHW but layout='HWC'",
            f"shape {image.shape}",
            "drop layout='HWC' (CHW is the default), or pass an (H, W, C) image",
        )


def _hw(image: np.ndarray, layout: str) -> tuple[int, int]:
    return (image.shape[1], image.shape[2]) if layout == "CHW" else (image.shape[0], image.shape[1])


def _crop(image: np.ndarray, top: int, left: int, hw: tuple[int, int], layout: str) -> np.ndarray:
    h, w = hw
    if layout == "CHW":
        return image[:, top : top + h, left : left + w]
    return image[top : top + h, left : left + w]


def _pil_crop(image: Image.Image, top: int, left: int, hw: tuple[int, int]) -> Image.Image:
    return image.crop((left, top, left + hw[1], top + hw[0]))


def _check_pil_crop_fits(op: str, image: Image.Image, hw: tuple[int, int]) -> None:
    if hw[0] > image.height or hw[1] > image.width:
        raise op_error(
            op,
            f"crop {hw[0]}x{hw[1]} is larger than the image {image.height}x{image.width} "
            "(height x width)",
            f"PIL image size {image.size} (width, height)",
            "resize the image first (ResizeShorter / Resize) or crop smaller",
        )


def _check_crop_fits(op: str, image: np.ndarray, hw: tuple[int, int], layout: str) -> None:
    ih, iw = _hw(image, layout)
    if hw[0] > ih or hw[1] > iw:
        raise op_error(
            op,
            f"crop {hw[0]}x{hw[1]} is larger than the image {ih}x{iw} (height x width)",
            f"{layout} shape {image.shape}",
            "resize the image first (ResizeShorter / Resize) or crop smaller",
        )


def _map_planes(
    image: np.ndarray, layout: str, fn: Callable[[Image.Image], Image.Image]
) -> np.ndarray:
    """Apply a Pillow operation to each channel of a 3-D image; uint8 stays uint8 (mode "L"),
    anything else is processed as float32 (mode "F")."""
    chw = image if layout == "CHW" else np.moveaxis(image, -1, 0)
    is_uint8 = chw.dtype == np.uint8
    planes = []
    for plane in chw:
        plane = plane if is_uint8 else plane.astype(np.float32, copy=False)
        planes.append(np.asarray(fn(Image.fromarray(np.ascontiguousarray(plane)))))
    out = np.stack(planes)
    out = out if is_uint8 else out.astype(np.float32, copy=False)
    return out if layout == "CHW" else np.moveaxis(out, 0, -1).copy()


def _resize(image: np.ndarray, hw: tuple[int, int], layout: str) -> np.ndarray:
    size_wh = (hw[1], hw[0])  # Pillow sizes are (width, height)
    return _map_planes(image, layout, lambda im: im.resize(size_wh, Image.Resampling.BILINEAR))


def _pil_fill(image: Image.Image, fill: float) -> float | int | tuple[int, ...]:
    """`fill` as Pillow wants it for `image`'s mode: a float for "F", one int per band else."""
    if image.mode in ("F", "I"):
        return fill
    value = int(round(fill))
    return value if len(image.getbands()) == 1 else (value,) * len(image.getbands())


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return _global_generator() if rng is None else rng


# ----------------------------------------------------------------------------- transforms


class Compose:
    """Apply transforms in order, passing the same rng to each."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        for t in self.transforms:
            image = t(image, rng)
        return image

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class ResizeShorter:
    """Scale so the shorter side is `size`, keeping the aspect ratio (the longer side
    `int(size * long / short)`), as torchvision's `Resize(int)`. Bilinear (Pillow),
    antialiased when shrinking.

    A PIL image gives a PIL image (resized in one Pillow call: the fast path for files); a CHW
    array (uint8 or float) gives a CHW array, uint8 staying uint8 and other dtypes float32.
    `layout="HWC"` takes and returns HWC (or (H, W) gray) arrays, for older code.
    """

    def __init__(self, size: int = 256, layout: Layout = "CHW") -> None:
        self.size = _pair("ResizeShorter", size)[0]
        _check_layout("ResizeShorter", layout)
        self.layout = layout

    def _target(self, h: int, w: int) -> tuple[int, int]:
        # the longer side truncated, as torchvision computes it, so sizes match it exactly
        if h <= w:
            return self.size, max(1, int(self.size * w / h))
        return max(1, int(self.size * h / w)), self.size

    def __call__(
        self, image: np.ndarray | Image.Image, rng: np.random.Generator | None = None
    ) -> np.ndarray | Image.Image:
        if _is_pil(image):
            th, tw = self._target(image.height, image.width)
            return image.resize((tw, th), Image.Resampling.BILINEAR)
        arr = np.asarray(image)
        gray = arr.ndim == 2 and self.layout == "HWC"
        if gray:
            arr = arr[:, :, None]
        _check_ndim("ResizeShorter", arr, self.layout)
        out = _resize(arr, self._target(*_hw(arr, self.layout)), self.layout)
        return out[:, :, 0] if gray else out

    def __repr__(self) -> str:
        return f"ResizeShorter({self.size})"


class Resize:
    """Resize to exactly `size` (int: square; or (height, width)), bilinear via Pillow per
    channel: mode "F" for float images (no quantisation), "L" for uint8. For upscaling small
    images, e.g. digits 8x8 -> 32x32. CHW arrays (float output is float32) or PIL images (PIL
    output); `layout="HWC"` for HWC arrays. (Unlike torchvision's `Resize`, an int means a
    square: for torchvision's shorter-side `Resize(int)` use `ResizeShorter`.)"""

    def __init__(self, size: Size, layout: Layout = "CHW") -> None:
        self.hw = _pair("Resize", size)
        _check_layout("Resize", layout)
        self.layout = layout

    def __call__(
        self, image: np.ndarray | Image.Image, rng: np.random.Generator | None = None
    ) -> np.ndarray | Image.Image:
        if _is_pil(image):
            return image.resize((self.hw[1], self.hw[0]), Image.Resampling.BILINEAR)
        image = np.asarray(image)
        _check_ndim("Resize", image, self.layout)
        return _resize(image, self.hw, self.layout)

    def __repr__(self) -> str:
        return f"Resize({self.hw})"


class CenterCrop:
    """The central `size` crop (top-left at ((H - h) // 2, (W - w) // 2)). CHW arrays or PIL
    images (PIL output); `layout="HWC"` for HWC arrays."""

    def __init__(self, size: Size, layout: Layout = "CHW") -> None:
        self.hw = _pair("CenterCrop", size)
        _check_layout("CenterCrop", layout)
        self.layout = layout

    def __call__(
        self, image: np.ndarray | Image.Image, rng: np.random.Generator | None = None
    ) -> np.ndarray | Image.Image:
        if _is_pil(image):
            _check_pil_crop_fits("CenterCrop", image, self.hw)
            top, left = (image.height - self.hw[0]) // 2, (image.width - self.hw[1]) // 2
            return _pil_crop(image, top, left, self.hw)
        image = np.asarray(image)
        _check_ndim("CenterCrop", image, self.layout)
        _check_crop_fits("CenterCrop", image, self.hw, self.layout)
        h, w = _hw(image, self.layout)
        top, left = (h - self.hw[0]) // 2, (w - self.hw[1]) // 2
        return _crop(image, top, left, self.hw, self.layout).copy()

    def __repr__(self) -> str:
        return f"CenterCrop({self.hw})"


class RandomCrop:
    """A `size` crop at a uniformly random position (every position equally likely), as in
    AlexNet's 227x227 training patches from 256x256 images. CHW arrays or PIL images (PIL
    output, the same position for the same rng); `layout="HWC"` for HWC arrays."""

    def __init__(self, size: Size, layout: Layout = "CHW") -> None:
        self.hw = _pair("RandomCrop", size)
        _check_layout("RandomCrop", layout)
        self.layout = layout

    def __call__(
        self, image: np.ndarray | Image.Image, rng: np.random.Generator | None = None
    ) -> np.ndarray | Image.Image:
        if _is_pil(image):
            _check_pil_crop_fits("RandomCrop", image, self.hw)
            top, left = self._position(image.height, image.width, rng)
            return _pil_crop(image, top, left, self.hw)
        image = np.asarray(image)
        _check_ndim("RandomCrop", image, self.layout)
        _check_crop_fits("RandomCrop", image, self.hw, self.layout)
        top, left = self._position(*_hw(image, self.layout), rng)
        return _crop(image, top, left, self.hw, self.layout).copy()

    def _position(self, h: int, w: int, rng: np.random.Generator | None) -> tuple[int, int]:
        r = _rng(rng)
        top = int(r.integers(0, h - self.hw[0] + 1))
        left = int(r.integers(0, w - self.hw[1] + 1))
        return top, left

    def __repr__(self) -> str:
        return f"RandomCrop({self.hw})"


class RandomHorizontalFlip:
    """Mirror left-right with probability `p`: the width axis of a CHW array (`layout="HWC"`:
    of an HWC array), or a PIL image (PIL output)."""

    def __init__(self, p: float = 0.5, layout: Layout = "CHW") -> None:
        if not 0.0 <= p <= 1.0:
            raise op_error("RandomHorizontalFlip", "p must be in [0, 1]", f"p={p}", "pass 0.5")
        _check_layout("RandomHorizontalFlip", layout)
        self.p = float(p)
        self.layout = layout

    def __call__(
        self, image: np.ndarray | Image.Image, rng: np.random.Generator | None = None
    ) -> np.ndarray | Image.Image:
        if not _is_pil(image):
            image = np.asarray(image)
            _check_ndim("RandomHorizontalFlip", image, self.layout)
        if not (self.p >= 1.0 or (self.p > 0.0 and _rng(rng).random() < self.p)):
            return image
        if _is_pil(image):
            return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return (image[:, :, ::-1] if self.layout == "CHW" else image[:, ::-1]).copy()

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomRotation:
    """Rotate a CHW image by an angle drawn uniformly from [-degrees, degrees] (or from
    `(low, high)`), counter-clockwise, about the centre, bilinear, same size; corners that come
    from outside the image are `fill`."""

    def __init__(self, degrees: float | tuple[float, float], fill: float = 0.0) -> None:
        if isinstance(degrees, tuple | list):
            low, high = float(degrees[0]), float(degrees[1])
        else:
            low, high = -abs(float(degrees)), abs(float(degrees))
        if low > high:
            raise op_error("RandomRotation", "need low <= high", (low, high), "pass (-10, 10)")
        self.degrees = (low, high)
        self.fill = float(fill)

    def __call__(
        self, image: np.ndarray | Image.Image, rng: np.random.Generator | None = None
    ) -> np.ndarray | Image.Image:
        if _is_pil(image):
            angle = float(_rng(rng).uniform(*self.degrees))
            return image.rotate(
                angle, resample=Image.Resampling.BILINEAR, fillcolor=_pil_fill(image, self.fill)
            )
        image = np.asarray(image)
        _check_ndim("RandomRotation", image)
        angle = float(_rng(rng).uniform(*self.degrees))
        fill = int(round(self.fill)) if image.dtype == np.uint8 else self.fill
        return _map_planes(
            image,
            "CHW",
            lambda im: im.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=fill),
        )

    def __repr__(self) -> str:
        return f"RandomRotation({self.degrees}, fill={self.fill})"


class RandomZoom:
    """Zoom a CHW image about its centre by a factor drawn uniformly from `scale` (> 1 zooms in,
    < 1 zooms out and pads with `fill`); bilinear, same output size."""

    def __init__(self, scale: tuple[float, float] = (0.9, 1.1), fill: float = 0.0) -> None:
        low, high = float(scale[0]), float(scale[1])
        if not 0.0 < low <= high:
            raise op_error(
                "RandomZoom", "scale must be (low, high) with 0 < low <= high", scale, "(0.9, 1.1)"
            )
        self.scale = (low, high)
        self.fill = float(fill)

    def __call__(
        self, image: np.ndarray | Image.Image, rng: np.random.Generator | None = None
    ) -> np.ndarray | Image.Image:
        if not _is_pil(image):
            image = np.asarray(image)
            _check_ndim("RandomZoom", image)
        s = float(_rng(rng).uniform(*self.scale))
        h, w = (image.height, image.width) if _is_pil(image) else image.shape[1:]
        cx, cy = w / 2.0, h / 2.0
        # Pillow's affine maps each output point (x, y) to the input point (a x + b y + c, ...).
        coeffs = (1 / s, 0.0, cx - cx / s, 0.0, 1 / s, cy - cy / s)
        if _is_pil(image):
            return image.transform(
                (w, h),
                Image.Transform.AFFINE,
                coeffs,
                resample=Image.Resampling.BILINEAR,
                fillcolor=_pil_fill(image, self.fill),
            )
        fill = int(round(self.fill)) if image.dtype == np.uint8 else self.fill
        return _map_planes(
            image,
            "CHW",
            lambda im: im.transform(
                (w, h),
                Image.Transform.AFFINE,
                coeffs,
                resample=Image.Resampling.BILINEAR,
                fillcolor=fill,
            ),
        )

    def __repr__(self) -> str:
        return f"RandomZoom({self.scale}, fill={self.fill})"


class RandomBrightness:
    """Add one offset drawn uniformly from [-delta, delta] to every pixel of a float image, then
    clip to `clip` (default [0, 1]; None to skip). Use before `Normalize`."""

    def __init__(self, delta: float, clip: tuple[float, float] | None = (0.0, 1.0)) -> None:
        if delta < 0:
            raise op_error("RandomBrightness", "delta must be >= 0", f"delta={delta}", "pass 0.1")
        self.delta = float(delta)
        self.clip = clip

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        image = _array_only("RandomBrightness", image)
        _check_ndim("RandomBrightness", image)
        if not np.issubdtype(image.dtype, np.floating):
            raise op_error(
                "RandomBrightness",
                "expects a float image in [0, 1]",
                f"dtype {image.dtype}",
                "apply ToCHWFloat() first",
            )
        offset = _rng(rng).uniform(-self.delta, self.delta)
        out = image + image.dtype.type(offset)
        return out if self.clip is None else np.clip(out, *self.clip).astype(image.dtype)

    def __repr__(self) -> str:
        return f"RandomBrightness({self.delta}, clip={self.clip})"


class GrayToRGB:
    """Repeat the one channel of a gray CHW image: (1, H, W) -> (3, H, W). A 3-channel image
    passes through unchanged (so mixed gray/colour datasets need no special case)."""

    def __call__(
        self, image: np.ndarray | Image.Image, rng: np.random.Generator | None = None
    ) -> np.ndarray | Image.Image:
        if _is_pil(image):
            return image if image.mode == "RGB" else image.convert("RGB")
        image = np.asarray(image)
        _check_ndim("GrayToRGB", image)
        if image.shape[0] == 3:
            return image
        if image.shape[0] != 1:
            raise op_error(
                "GrayToRGB",
                "expects a CHW image with 1 (or 3) channels",
                f"shape {image.shape}",
                "pass a (1, H, W) image; use ToCHWFloat() first on HWC images",
            )
        return np.repeat(image, 3, axis=0)

    def __repr__(self) -> str:
        return "GrayToRGB()"


class ToCHWFloat:
    """HWC (or (H, W) gray, or PIL) -> CHW float32. uint8 is divided by 255 into [0, 1]; float
    input is only transposed and cast (assumed already in [0, 1])."""

    def __call__(
        self, image: np.ndarray | Image.Image, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        arr = _as_array(image)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        _check_ndim("ToCHWFloat", arr, "HWC")
        chw = np.ascontiguousarray(np.moveaxis(arr, -1, 0))
        if arr.dtype == np.uint8:
            return chw.astype(np.float32) / np.float32(255.0)
        if np.issubdtype(arr.dtype, np.floating):
            return chw.astype(np.float32)
        raise op_error(
            "ToCHWFloat",
            "expects a uint8 or float image",
            f"dtype {arr.dtype}",
            "convert it with load_image() or .astype(np.uint8)",
        )

    def __repr__(self) -> str:
        return "ToCHWFloat()"


class Normalize:
    """Per channel `(image - mean[c]) / std[c]` on a CHW image; `inverse` undoes it."""

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float32))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float32))
        if self.mean.ndim != 1 or self.std.ndim != 1 or np.any(self.std <= 0):
            raise op_error(
                "Normalize",
                "mean and std must be numbers or 1-D per-channel lists, std > 0",
                f"mean={mean}, std={std}",
                "pass e.g. Normalize(IMAGENET_MEAN, IMAGENET_STD)",
            )

    def _stats(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _check_ndim("Normalize", image)
        c = image.shape[0]
        for name, v in (("mean", self.mean), ("std", self.std)):
            if len(v) not in (1, c):
                raise op_error(
                    "Normalize",
                    f"{name} has {len(v)} values but the image has {c} channels",
                    f"shape {image.shape}",
                    f"give one {name} per channel (or GrayToRGB() first)",
                )
        return self.mean[:, None, None], self.std[:, None, None]

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        image = np.asarray(_array_only("Normalize", image), dtype=np.float32)
        mean, std = self._stats(image)
        return (image - mean) / std

    def inverse(self, image: np.ndarray) -> np.ndarray:
        """`image * std + mean`: back to [0, 1] pixels (for display)."""
        image = np.asarray(image, dtype=np.float32)
        mean, std = self._stats(image)
        return image * std + mean

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


# ----------------------------------------------------------------------------- ten-crop test


def ten_crop(image_chw: np.ndarray, size: Size) -> np.ndarray:
    """The AlexNet test-time crops of one CHW image: `(10, C, h, w)`.

    Order: top-left, top-right, bottom-left, bottom-right, centre (same position as
    `CenterCrop`), then the horizontal mirrors of those five in the same order.
    """
    image = np.asarray(image_chw)
    _check_ndim("ten_crop", image)
    hw = _pair("ten_crop", size)
    _check_crop_fits("ten_crop", image, hw, "CHW")
    h, w = image.shape[1], image.shape[2]
    corners = [
        (0, 0),
        (0, w - hw[1]),
        (h - hw[0], 0),
        (h - hw[0], w - hw[1]),
        ((h - hw[0]) // 2, (w - hw[1]) // 2),
    ]
    five = np.stack([_crop(image, top, left, hw, "CHW") for top, left in corners])
    return np.concatenate([five, five[:, :, :, ::-1]])


def _softmax(scores: np.ndarray) -> np.ndarray:
    z = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def ten_crop_predict(
    predict_fn: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray | Sequence[np.ndarray],
    size: Size,
    softmax: bool = True,
    batch_size: int = 16,
) -> np.ndarray:
    """Average a model's predictions over the ten crops of each image (the paper's test-time
    evaluation). Returns `(N, num_classes)` float32; take `.argmax(1)` for the class.

    `images`: an `(N, C, H, W)` array or a sequence of CHW images (each at least `size`).
    `predict_fn` maps a float32 `(B, C, h, w)` batch to `(B, num_classes)` scores (numpy, or
    anything with `.numpy()` such as a Tensor). With `softmax=True` (default) the scores are
    taken as logits and their softmax probabilities are averaged, as in the paper; pass
    `softmax=False` to average the raw outputs (e.g. when `predict_fn` already returns
    probabilities). `batch_size` images (10x as many crops) go to `predict_fn` per call.
    """
    if batch_size < 1:
        raise op_error("ten_crop_predict", "batch_size must be >= 1", batch_size, "pass 16")
    results = []
    for start in range(0, len(images), batch_size):
        chunk = [images[i] for i in range(start, min(start + batch_size, len(images)))]
        crops = np.concatenate([ten_crop(img, size) for img in chunk]).astype(np.float32)
        out = predict_fn(crops)
        out = np.asarray(out.numpy() if hasattr(out, "numpy") else out, dtype=np.float64)
        if out.ndim != 2 or out.shape[0] != len(crops):
            raise op_error(
                "ten_crop_predict",
                f"predict_fn must return (batch, num_classes) scores for {len(crops)} crops",
                f"output shape {out.shape} for input {crops.shape}",
                "return one row of class scores per input image",
            )
        if softmax:
            out = _softmax(out)
        results.append(out.reshape(len(chunk), 10, -1).mean(axis=1))
    if not results:
        raise op_error("ten_crop_predict", "no images", "0 images", "pass at least one image")
    return np.concatenate(results).astype(np.float32)

"""The built-in offline dataset: small images of superclasses x 5 related members, made from a seed.

A superclass is a shape family (disk, square, diamond, cross, ring) inside one colour band; its five
members are five neighbouring hues of that band, from the coolest to the warmest. Every image also varies
in position, size, a striped texture (period, angle, phase, strength), saturation, brightness, background
and pixel noise, and its hue is jittered around its member's hue, so that neighbouring members overlap a
little. A classifier then confuses mostly members of one superclass, and more so the closer their hues:
a teacher's non-target probabilities carry graded class relations, which is what logit distillation
transfers. Telling the shapes apart at 16x16 pixels is the hard part and takes capacity, so a larger
teacher learns it faster than a small student; no feature is all-or-nothing (generator v2 hid the member
in a stripe period that small CNNs found only after a seed-dependent plateau), so runs converge smoothly.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import torch

__all__ = ["MEMBERS", "SHAPES", "generate_synthetic", "superclass_of", "class_names", "superclass_names",
           "superclass_map", "load_synthetic"]

MEMBERS = 5  # classes per superclass
SHAPES = ("disk", "square", "diamond", "ring", "cross")  # the distance functions' families 0..4
FAMILY_OF_SUPERCLASS = (0, 1, 2, 4, 3)  # superclass s draws family FAMILY_OF_SUPERCLASS[s % 5]: disk, square, diamond, cross, ring
HUE_NAMES = ("red", "scarlet", "orange", "amber", "yellow", "lime", "chartreuse", "green", "emerald", "jade",
             "cyan", "azure", "sky", "blue", "indigo", "violet", "purple", "magenta", "fuchsia", "rose")
HUE_STEP = 0.07  # hue distance (of a full turn 1.0) between neighbouring members of one superclass
HUE_JITTER = 0.02  # std of one image's hue around its member's hue: neighbours overlap by a few percent
GENERATOR_VERSION = 3  # part of cache file names: bump whenever the images a seed gives change
_CHUNK = 512  # images rendered at once (fixed, so the random stream does not depend on the machine)
_NUM_PARAMS = 18  # uniform draws per image


def _check_num_classes(num_classes: int) -> int:
    """Number of superclasses; num_classes must be a positive multiple of MEMBERS."""
    if num_classes < MEMBERS or num_classes % MEMBERS:
        raise ValueError(f"num_classes={num_classes} must be a positive multiple of {MEMBERS} "
                         f"(superclasses of {MEMBERS} members), e.g. 100 or 20")
    return num_classes // MEMBERS


def superclass_of(class_index, num_classes: int = 100):
    """Superclass of a class index (int or tensor): class c belongs to superclass c // 5."""
    _check_num_classes(num_classes)
    return class_index // MEMBERS


def superclass_map(num_classes: int = 100) -> torch.Tensor:
    """int64 (num_classes,): the superclass of every class."""
    return superclass_of(torch.arange(num_classes), num_classes)


def _bands(n_super: int) -> int:
    """Colour bands: five superclasses (one per shape family) share a band."""
    return -(-n_super // len(SHAPES))


def _member_hues(num_classes: int) -> torch.Tensor:
    """float64 (num_classes,): the hue of every class in [0, 1), band centre + member offset."""
    n_super = _check_num_classes(num_classes)
    c = torch.arange(num_classes)
    centre = (c // MEMBERS // len(SHAPES)).double() / _bands(n_super)
    return (centre + (c % MEMBERS - (MEMBERS - 1) / 2).double() * HUE_STEP) % 1.0


def _shape_name(s: int) -> str:
    """Shape family name of superclass `s`."""
    return SHAPES[FAMILY_OF_SUPERCLASS[s % len(SHAPES)]]


def _hue_name(hue: float) -> str:
    """The nearest of 20 named hues."""
    return HUE_NAMES[round(hue * len(HUE_NAMES)) % len(HUE_NAMES)]


def superclass_names(num_classes: int = 100) -> list[str]:
    """Readable superclass names, e.g. 'red-band disks'."""
    n_super = _check_num_classes(num_classes)
    plural = {"cross": "crosses"}
    return [f"{_hue_name((s // len(SHAPES)) / _bands(n_super))}-band {plural.get(_shape_name(s), _shape_name(s) + 's')}"
            for s in range(n_super)]


def class_names(num_classes: int = 100) -> list[str]:
    """Readable class names, e.g. 'disk, rose' (the shape, then the member's hue)."""
    hues = _member_hues(num_classes).tolist()
    return [f"{_shape_name(c // MEMBERS)}, {_hue_name(hues[c])}" for c in range(num_classes)]


def _stream_seed(seed: int, split: str) -> int:
    """Seed of the random stream of one split: train and val never share draws."""
    if split not in ("train", "val"):
        raise ValueError(f"split={split!r} must be 'train' or 'val'")
    return 2 * int(seed) + (split == "val")


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(n,) hue in [0, 1), saturation, value -> (n, 3) RGB in [0, 1]."""
    n = torch.tensor([5.0, 3.0, 1.0], dtype=h.dtype)
    k = (n + 6 * h[:, None]) % 6  # (n, 3)
    ramp = torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    return v[:, None] * (1 - s[:, None] * ramp)


def _family_distance(family: int, x: torch.Tensor, y: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Signed distance (< 0 inside) to shape `family`; x, y (n, H, W) centred coords, r (n, 1, 1)."""
    ax, ay = x.abs(), y.abs()
    if family == 0:  # disk
        return torch.sqrt(x**2 + y**2) - r
    if family == 1:  # square
        return torch.maximum(ax, ay) - 0.85 * r
    if family == 2:  # diamond
        return ax + ay - 1.2 * r
    if family == 3:  # ring
        return (torch.sqrt(x**2 + y**2) - 0.72 * r).abs() - 0.32 * r
    return torch.minimum(torch.maximum(ax - 0.38 * r, ay - r), torch.maximum(ay - 0.38 * r, ax - r))  # cross


def _shape_distance(shape: torch.Tensor, x: torch.Tensor, y: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Signed distance (n, H, W) to each image's own shape family `shape` (n,)."""
    out = torch.empty_like(x)
    for family in shape.unique().tolist():  # at most 5 passes, each over the images of one family
        idx = (shape == family).nonzero()[:, 0]
        out[idx] = _family_distance(family, x[idx], y[idx], r[idx])
    return out


def _normal(u: torch.Tensor) -> torch.Tensor:
    """Approximately standard normal from 3 uniforms along the last axis (..., 3) -> (...)."""
    return (u.sum(-1) - 1.5) * 2.0


def _render(labels: torch.Tensor, p: torch.Tensor, noise: torch.Tensor, num_classes: int,
            size: int) -> torch.Tensor:
    """Images float64 (n, H, W, 3) in [0, 1] from labels (n,), uniforms p (n, 18) and noise (n, H, W, 3)."""
    sup = labels // MEMBERS
    coords = (torch.arange(size, dtype=torch.float64) + 0.5 - size / 2) / (size / 2)  # (W,) in [-1, 1]
    cx, cy = (p[:, 0] - 0.5) * 0.4, (p[:, 1] - 0.5) * 0.4  # centre shift up to a tenth of the width
    x = (coords[None, None, :] - cx[:, None, None]).expand(-1, size, -1)  # (n, H, W)
    y = (coords[None, :, None] - cy[:, None, None]).expand(-1, -1, size)  # (n, H, W)
    radius = (0.55 + 0.25 * p[:, 2])[:, None, None]  # (n, 1, 1)
    family = torch.tensor(FAMILY_OF_SUPERCLASS)[sup % len(SHAPES)]  # (n,)
    inside = torch.sigmoid(-_shape_distance(family, x, y, radius) * size / 1.5)  # (n, H, W) soft mask

    period = (3.0 * torch.exp(0.5 * (p[:, 3] - 0.5)))[:, None, None] * (size / 16)  # (n, 1, 1) pixels, a nuisance
    angle, phase = math.pi * p[:, 6], 2 * math.pi * p[:, 7]
    along = (x * torch.cos(angle)[:, None, None] + y * torch.sin(angle)[:, None, None]) * (size / 2)  # pixels
    stripes = 0.5 + 0.5 * torch.cos(2 * math.pi * along / period + phase[:, None, None])  # (n, H, W)

    hue = (_member_hues(num_classes)[labels] + HUE_JITTER * _normal(p[:, 8:11])) % 1.0  # (n,)
    fg = _hsv_to_rgb(hue, 0.75 + 0.25 * p[:, 11], 0.65 + 0.3 * p[:, 12])  # (n, 3)
    bg = (0.1 + 0.35 * p[:, 13])[:, None] + 0.1 * (p[:, 14:17] - 0.5)  # (n, 3) dark grey, tinted
    lift = (0.05 + 0.1 * p[:, 17])[:, None, None, None] * stripes[..., None]  # (n, H, W, 1) faint, towards white
    shape_rgb = fg[:, None, None, :] * (1 - lift) + lift  # (n, H, W, 3) light stripes on the shape colour
    img = inside[..., None] * shape_rgb + (1 - inside[..., None]) * bg[:, None, None, :]
    return img + noise


def generate_synthetic(num_classes: int = 100, per_class: int = 100, *, seed: int = 0, split: str = "train",
                       image_size: int = 32, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, H, W, 3) and labels int64 (N,), N = num_classes * per_class, sorted by class.

    Deterministic: the same arguments give the same bytes on any machine (a CPU torch.Generator, float64
    arithmetic, then rounding to uint8).
    """
    _check_num_classes(num_classes)
    if per_class < 1:
        raise ValueError(f"per_class={per_class} must be >= 1")
    if image_size < 8:
        raise ValueError(f"image_size={image_size} must be >= 8 (16 for the demo, 32 CIFAR-sized)")
    gen = torch.Generator().manual_seed(_stream_seed(seed, split))
    labels = torch.arange(num_classes).repeat_interleave(per_class)  # (N,)
    params = torch.rand(len(labels), _NUM_PARAMS, generator=gen, dtype=torch.float64)  # (N, 18)
    out = np.empty((len(labels), image_size, image_size, 3), dtype=np.uint8)
    for start in range(0, len(labels), _CHUNK):
        stop = min(start + _CHUNK, len(labels))
        pixel_noise = (torch.rand(stop - start, image_size, image_size, 3, generator=gen,
                                  dtype=torch.float64) - 0.5) * (2 * noise)
        img = _render(labels[start:stop], params[start:stop], pixel_noise, num_classes, image_size)
        out[start:stop] = torch.round(img.clamp(0, 1) * 255).to(torch.uint8).numpy()
    return out, labels.numpy()


def load_synthetic(*, split: str, num_classes: int = 100, train_per_class: int = 100, val_per_class: int = 20,
                   seed: int = 0, cache_dir: str | Path | None = None, **render) -> tuple[np.ndarray, np.ndarray]:
    """One split (uint8 images, labels), generated, or read from / written to `cache_dir` when given."""
    per_class = train_per_class if split == "train" else val_per_class
    if cache_dir is None:
        return generate_synthetic(num_classes, per_class, seed=seed, split=split, **render)
    extra = "".join(f"_{k}{v}" for k, v in sorted(render.items()))
    name = f"synthetic_v{GENERATOR_VERSION}_c{num_classes}_n{per_class}_s{seed}_{split}{extra}"
    path = Path(cache_dir) / f"{name}.npz"
    if path.is_file():
        with np.load(path) as f:
            return f["images"], f["labels"]
    images, labels = generate_synthetic(num_classes, per_class, seed=seed, split=split, **render)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{name}.{os.getpid()}.partial.npz")  # then an atomic rename: safe with many ranks
    np.savez(partial, images=images, labels=labels)
    os.replace(partial, path)
    return images, labels


if __name__ == "__main__":  # quick timing: python -m ldrld_mini.data.synthetic
    t0 = time.perf_counter()
    imgs, _ = generate_synthetic()
    print(f"{imgs.shape} in {time.perf_counter() - t0:.2f} s")

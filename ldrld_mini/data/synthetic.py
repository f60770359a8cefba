"""The built-in offline dataset: CIFAR-shaped images of 20 superclasses x 5 related members, made from a seed.

A superclass fixes a shape family (disk, square, diamond, ring, cross) and a colour (its hue); its five
members differ only in the period of the stripes that texture the shape, from very fine to very coarse.
Every image also varies in position, size, stripe angle and phase, colour, brightness, background and
noise. Neighbouring members overlap, so a classifier confuses mostly classes of the same superclass, and
more so the closer their stripe periods are: a teacher's non-target probabilities then carry real
class-relation knowledge, which is what logit distillation transfers.
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
SHAPES = ("disk", "square", "diamond", "ring", "cross")
PERIODS = (2.7, 3.6, 4.8, 6.4, 8.5)  # stripe period in pixels of member 0..4
MEMBER_NAMES = ("very fine", "fine", "medium", "coarse", "very coarse")
HUE_NAMES = ("red", "scarlet", "orange", "amber", "yellow", "lime", "chartreuse", "green", "emerald", "jade",
             "cyan", "azure", "sky", "blue", "indigo", "violet", "purple", "magenta", "fuchsia", "rose")
PERIOD_JITTER = 0.09  # std of the log-period of one image around its member's period
# Stripes lift the shape colour towards white by U(a, a + b). Version 1 lifted by U(0.3, 0.6): small CNNs
# then sat for about 5 epochs at the 20 % 'superclass right, member guessed' plateau, and whether a
# distilled student left it within the demo's 8 epochs was a matter of the seed. Version 2: U(0.5, 0.8).
STRIPE_LIFT = (0.5, 0.3)
GENERATOR_VERSION = 2  # part of cache file names: bump whenever the images a seed gives change
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


def _hue_name(s: int, n_super: int) -> str:
    """Colour name of superclass `s` (named hues for 20 superclasses, degrees otherwise)."""
    return HUE_NAMES[s] if n_super == len(HUE_NAMES) else f"hue {round(360 * s / n_super):03d}"


def superclass_names(num_classes: int = 100) -> list[str]:
    """Readable superclass names, e.g. 'red disks'."""
    n_super = _check_num_classes(num_classes)
    return [f"{_hue_name(s, n_super)} {SHAPES[s % len(SHAPES)]}s" for s in range(n_super)]


def class_names(num_classes: int = 100) -> list[str]:
    """Readable class names, e.g. 'red disk, fine stripes'."""
    n_super = _check_num_classes(num_classes)
    return [f"{_hue_name(c // MEMBERS, n_super)} {SHAPES[(c // MEMBERS) % len(SHAPES)]}, "
            f"{MEMBER_NAMES[c % MEMBERS]} stripes" for c in range(num_classes)]


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


def _render(labels: torch.Tensor, p: torch.Tensor, noise: torch.Tensor, n_super: int, size: int) -> torch.Tensor:
    """Images float64 (n, H, W, 3) in [0, 1] from labels (n,), uniforms p (n, 18) and noise (n, H, W, 3)."""
    sup, member = labels // MEMBERS, labels % MEMBERS
    coords = (torch.arange(size, dtype=torch.float64) + 0.5 - size / 2) / (size / 2)  # (W,) in [-1, 1]
    cx, cy = (p[:, 0] - 0.5) * 0.5, (p[:, 1] - 0.5) * 0.5  # centre shift up to 4 px
    x = coords[None, None, :] - cx[:, None, None]  # (n, 1, W)
    y = coords[None, :, None] - cy[:, None, None]  # (n, H, 1)
    x, y = x.expand(-1, size, -1), y.expand(-1, -1, size)  # (n, H, W)
    radius = (0.5 + 0.3 * p[:, 2])[:, None, None]  # (n, 1, 1)
    inside = torch.sigmoid(-_shape_distance(sup % len(SHAPES), x, y, radius) * size / 1.5)  # (n, H, W) soft mask

    period = torch.tensor(PERIODS, dtype=torch.float64)[member] * torch.exp(PERIOD_JITTER * _normal(p[:, 3:6]))
    angle, phase = math.pi * p[:, 6], 2 * math.pi * p[:, 7]
    along = (x * torch.cos(angle)[:, None, None] + y * torch.sin(angle)[:, None, None]) * (size / 2)  # pixels
    stripes = 0.5 + 0.5 * torch.cos(2 * math.pi * along / period[:, None, None] + phase[:, None, None])

    hue = (sup.double() / n_super + 0.015 * _normal(p[:, 8:11])) % 1.0
    fg = _hsv_to_rgb(hue, 0.7 + 0.3 * p[:, 11], 0.6 + 0.3 * p[:, 12])  # (n, 3)
    bg = (0.1 + 0.35 * p[:, 13])[:, None] + 0.1 * (p[:, 14:17] - 0.5)  # (n, 3) dark grey, tinted
    strength = (STRIPE_LIFT[0] + STRIPE_LIFT[1] * p[:, 17])[:, None, None, None]  # (n, 1, 1, 1)
    lift = strength * stripes[..., None]  # (n, H, W, 1): how far each pixel moves towards white
    shape_rgb = fg[:, None, None, :] * (1 - lift) + lift  # (n, H, W, 3) light stripes on the shape colour
    img = inside[..., None] * shape_rgb + (1 - inside[..., None]) * bg[:, None, None, :]
    return img + noise


def generate_synthetic(num_classes: int = 100, per_class: int = 100, *, seed: int = 0, split: str = "train",
                       image_size: int = 32, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, H, W, 3) and labels int64 (N,), N = num_classes * per_class, sorted by class.

    Deterministic: the same arguments give the same bytes on any machine (a CPU torch.Generator, float64
    arithmetic, then rounding to uint8).
    """
    n_super = _check_num_classes(num_classes)
    if per_class < 1:
        raise ValueError(f"per_class={per_class} must be >= 1")
    gen = torch.Generator().manual_seed(_stream_seed(seed, split))
    labels = torch.arange(num_classes).repeat_interleave(per_class)  # (N,)
    params = torch.rand(len(labels), _NUM_PARAMS, generator=gen, dtype=torch.float64)  # (N, 18)
    out = np.empty((len(labels), image_size, image_size, 3), dtype=np.uint8)
    for start in range(0, len(labels), _CHUNK):
        stop = min(start + _CHUNK, len(labels))
        pixel_noise = (torch.rand(stop - start, image_size, image_size, 3, generator=gen,
                                  dtype=torch.float64) - 0.5) * (2 * noise)
        img = _render(labels[start:stop], params[start:stop], pixel_noise, n_super, image_size)
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

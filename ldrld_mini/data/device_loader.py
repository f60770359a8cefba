"""A CIFAR-style loader that keeps the whole uint8 dataset on the device and augments whole batches there.

Per epoch: one permutation from a torch.Generator seeded by (seed, epoch), then per image a crop offset
(dy, dx) uniform over {0..2p}^2 and a flip with probability 1/2, drawn from the same generator. Per batch:
zero-pad by p, crop, flip, scale to [0, 1], normalise: the same arithmetic as torchvision's
RandomCrop(padding=p) + RandomHorizontalFlip + ToTensor + Normalize (padding is 0 before normalising, as
torchvision pads the PIL image with black), so outputs agree bit for bit for the same offsets and flips.
"""
from __future__ import annotations

import math

import torch

__all__ = ["DeviceLoader", "epoch_generator", "shard_indices", "crop_flip", "normalise"]

_SEED_STRIDE = 1_000_003  # a prime larger than any epoch count: (seed, epoch) -> seed * stride + epoch


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator whose stream depends only on (seed, epoch), for exact resume."""
    return torch.Generator().manual_seed(int(seed) * _SEED_STRIDE + int(epoch))


def shard_indices(order: torch.Tensor, rank: int, world_size: int, drop_last: bool) -> torch.Tensor:
    """This rank's share of `order` (N,), as DistributedSampler: wrap-pad (or drop) to a multiple of world_size."""
    n = len(order)
    if drop_last:
        total = (n // world_size) * world_size
        order = order[:total]
    else:
        total = math.ceil(n / world_size) * world_size
        order = torch.cat([order, order[: total - n]]) if total > n else order  # (total,)
    return order[rank:total:world_size]


def crop_flip(images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor,
              padding: int) -> torch.Tensor:
    """uint8 (B, C, H, W) -> (B, C, H, W): zero-pad by `padding`, crop at (dy, dx) (B,), flip where `flip` (B,)."""
    b, c, h, w = images.shape
    hp, wp = h + 2 * padding, w + 2 * padding
    padded = images.new_zeros(b, c, hp, wp)  # black border, as torchvision pads the PIL image with 0
    padded[:, :, padding:padding + h, padding:padding + w] = images
    cols = torch.arange(w, device=images.device)  # (W,)
    rows = dy[:, None] + torch.arange(h, device=images.device)  # (B, H) rows of the padded image
    cols = dx[:, None] + torch.where(flip[:, None], w - 1 - cols, cols)  # (B, W) a flip reads columns backwards
    flat = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)  # (B, C, H * W)
    return padded.view(b, c, hp * wp).gather(2, flat).view(b, c, h, w)


def normalise(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32, as ToTensor (x / 255) then Normalize ((x - mean) / std), same op order."""
    return images.float().div(255).sub(mean).div(std)


class DeviceLoader:
    """Batches (float32 (B, C, H, W) normalised, int64 (B,)) from uint8 images held on `device`.

    `data` is uint8 (N, H, W, C) (CIFAR / numpy layout) or (N, C, H, W); `train=True` shuffles and augments
    (random crop with zero padding `padding`, flips if `flip`), `train=False` keeps the order, no augmentation.
    Call `set_epoch(e)` before each epoch: the order and the augmentation depend only on (seed, e).
    Without a `set_epoch` call the epoch advances by one at each new iteration (handy in notebooks).
    With `world_size > 1` each rank gets a disjoint share of the epoch's permutation (DistributedSampler rules).
    """

    def __init__(self, data, targets, *, batch_size: int, mean, std, train: bool = True, padding: int = 4,
                 flip: bool = True, shuffle: bool | None = None, augment: bool | None = None,
                 drop_last: bool = False, seed: int = 0, device="cpu", rank: int = 0, world_size: int = 1):
        images = torch.as_tensor(data)
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"data must be uint8 (N, H, W, C) or (N, C, H, W), "
                             f"got {images.dtype} {tuple(images.shape)}")
        if images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
            images = images.permute(0, 3, 1, 2)  # (N, C, H, W)
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must lie in [0, world_size={world_size})")
        self.device = torch.device(device)
        self.images = images.contiguous().to(self.device)  # (N, C, H, W) uint8
        self.targets = torch.as_tensor(targets, dtype=torch.int64).to(self.device)  # (N,)
        if len(self.targets) != len(self.images):
            raise ValueError(f"targets has {len(self.targets)} labels for {len(self.images)} images")
        shape = (1, -1, 1, 1)
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=self.device).view(shape)
        self.std = torch.as_tensor(std, dtype=torch.float32, device=self.device).view(shape)
        self.batch_size, self.padding, self.flip, self.drop_last = batch_size, padding, flip, drop_last
        self.shuffle = train if shuffle is None else shuffle
        self.augment = train if augment is None else augment
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch, self._epoch_was_set = 0, False

    def set_epoch(self, epoch: int) -> None:
        """Fix the epoch whose shuffle and augmentation the next iteration uses."""
        self.epoch, self._epoch_was_set = int(epoch), True

    def epoch_plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(indices of this rank (n,), dy (N,), dx (N,), flip (N,)) for `epoch`; offsets and flips per dataset image.

        One generator seeded by (seed, epoch) draws, in this order: the permutation (when shuffling), the
        offsets uniform over {0..2p}^2, the flips with probability 1/2. Every rank draws the same, so a
        sample's augmentation does not depend on the sharding.
        """
        n, gen = len(self.images), epoch_generator(self.seed, epoch)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        if self.world_size > 1:
            order = shard_indices(order, self.rank, self.world_size, self.drop_last)
        offsets = torch.randint(0, 2 * self.padding + 1, (2, n), generator=gen)  # (2, N)
        flips = torch.rand(n, generator=gen) < 0.5
        return order, offsets[0], offsets[1], flips & self.flip

    def __len__(self) -> int:
        """Number of batches per epoch on this rank."""
        n = len(self.images)
        if self.world_size > 1:
            n = n // self.world_size if self.drop_last else math.ceil(n / self.world_size)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        epoch = self.epoch
        if not self._epoch_was_set:
            self.epoch += 1  # notebook mode: each new pass is the next epoch
        order, dy, dx, flips = (t.to(self.device) for t in self.epoch_plan(epoch))
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]  # (B,)
            images = self.images[idx]  # (B, C, H, W) uint8
            if self.augment:
                images = crop_flip(images, dy[idx], dx[idx], flips[idx], self.padding)
            yield normalise(images, self.mean, self.std), self.targets[idx]

    @property
    def dataset_size(self) -> int:
        """Number of images held (all ranks)."""
        return len(self.images)

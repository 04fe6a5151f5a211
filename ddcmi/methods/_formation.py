"""Multi-formation (IDC's factor-f layout, IDM's partition and expansion): f x f downsampled images
tiled into each stored image, and back.

``tile`` / ``untile`` move small images into and out of the f x f tiles of a storage image (exact
inverses); ``encode`` downsamples full-size images and tiles them; ``decode`` cuts the tiles out and
upsamples each back to full size (bilinear), so a storage set of IPC images per class trains networks
on f^2 x IPC images. IDC and IDM share these functions.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError

FACTOR = 2


def tile(images: torch.Tensor, factor: int) -> torch.Tensor:
    """(B*f*f) x C x h x w small images -> B x C x (f*h) x (f*w) storage images; image k*f*f + i*f + j
    goes to tile (row i, column j) of storage image k."""
    n, c, h, w = images.shape
    if n % (factor * factor):
        raise ConfigError(f"{n} images cannot be tiled {factor}x{factor}")
    b = n // (factor * factor)
    return images.reshape(b, factor, factor, c, h, w).permute(0, 3, 1, 4, 2, 5).reshape(b, c, factor * h, factor * w)


def untile(storage: torch.Tensor, factor: int) -> torch.Tensor:
    """The exact inverse of :func:`tile`."""
    b, c, hh, ww = storage.shape
    if hh % factor or ww % factor:
        raise ConfigError(f"a {hh}x{ww} image cannot hold {factor}x{factor} tiles")
    h, w = hh // factor, ww // factor
    return storage.reshape(b, c, factor, h, factor, w).permute(0, 2, 4, 1, 3, 5).reshape(b * factor * factor, c, h, w)


def encode(images: torch.Tensor, factor: int = FACTOR) -> torch.Tensor:
    """Full-size images (f^2 per storage image) -> storage images: downsample each, then tile."""
    h, w = images.shape[-2:]
    small = F.interpolate(images, size=(h // factor, w // factor), mode="bilinear", align_corners=False,
                          antialias=True)
    return tile(small, factor)


def decode(storage: torch.Tensor, factor: int = FACTOR) -> torch.Tensor:
    """Storage images -> f^2 full-size images each: cut the tiles out and upsample them (bilinear)."""
    h, w = storage.shape[-2:]
    return F.interpolate(untile(storage, factor), size=(h, w), mode="bilinear", align_corners=False)


def decoded_labels(labels: torch.Tensor, factor: int = FACTOR) -> torch.Tensor:
    return labels.repeat_interleave(factor * factor)


def tile_sources(sampler, num_classes: int, ipc: int, factor: int, draws) -> tuple[torch.Tensor, torch.Tensor]:
    """The real images a multi-formation set starts from: ``factor^2 x ipc`` distinct random training
    images of each class (classes in order, each from its own ``draws("init", c)``), normalised and full
    size, ready for :func:`encode`; and the labels of the ``ipc`` stored images per class."""
    sampler.check_ipc(ipc * factor * factor)
    real = torch.cat([sampler.sample(c, ipc * factor * factor, draws("init", c)) for c in range(num_classes)])
    return real, torch.arange(num_classes, device=real.device).repeat_interleave(ipc)

"""Differentiable Siamese augmentation (DSA), driven by an explicit ``torch.Generator``.

A strategy such as ``color_crop_cutout_flip_scale_rotate`` names the operations; each call picks one
of them at random ("color" applies brightness, saturation and contrast in turn). Parameters are drawn
first (:meth:`DSA.sample`) and applied second (:meth:`DSA.apply`), so one draw can be applied to a
real and a synthetic batch alike:

- **Siamese** (``siamese=True``): one parameter draw for the whole call, shared by every image of
  every batch it is applied to (distillation: real and synthetic images of a class).
- **independent** (``siamese=False``): one draw per image (training a network on a synthetic set).

All operations are differentiable with respect to the images. Draws happen on the CPU generator, so a
seed gives the same augmentation on any device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import ConfigError

OPERATIONS = ("color", "crop", "cutout", "flip", "scale", "rotate")


@dataclass(frozen=True)
class DSAConfig:
    strategy: str = "color_crop_cutout_flip_scale_rotate"
    flip_p: float = 0.5
    scale: float = 1.2
    rotate_deg: float = 15.0
    crop: float = 0.125
    cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5

    def operations(self) -> tuple[str, ...]:
        if self.strategy in ("", "none"):
            return ()
        ops = tuple(self.strategy.split("_"))
        bad = [o for o in ops if o not in OPERATIONS]
        if bad:
            raise ConfigError(f"unknown DSA operation(s) {bad} in strategy {self.strategy!r}; "
                              f"known: {', '.join(OPERATIONS)} (or 'none')")
        return ops


class DSA:
    """``DSA(cfg)(x, generator, siamese)`` augments a batch; ``sample``/``apply`` split the two steps."""

    def __init__(self, config: DSAConfig | None = None):
        self.config = config or DSAConfig()
        self.ops = self.config.operations()

    @property
    def enabled(self) -> bool:
        return bool(self.ops)

    def __call__(self, x: torch.Tensor, generator: torch.Generator, siamese: bool = False) -> torch.Tensor:
        return self.apply(x, self.sample(x.shape, generator, siamese))

    def siamese(self, real: torch.Tensor, syn: torch.Tensor, generator: torch.Generator):
        """The Siamese pair every matching method uses: one draw applied to the real and the synthetic
        batch (both unchanged when no strategy is set)."""
        if not self.ops:
            return real, syn
        p = self.sample(real.shape, generator, siamese=True)
        return self.apply(real, p), self.apply(syn, p)

    def sample(self, shape, generator: torch.Generator, siamese: bool) -> dict:
        """Draw the parameters for a batch of ``shape`` (N x C x H x W); Siamese draws one set."""
        if not self.ops:
            return {"op": "none"}
        n = 1 if siamese else int(shape[0])
        h, w = int(shape[2]), int(shape[3])
        c = self.config
        op = self.ops[int(torch.randint(len(self.ops), (1,), generator=generator))]

        def u():
            return torch.rand(n, generator=generator)

        if op == "color":
            return {"op": op, "brightness": (u() - 0.5) * c.brightness, "saturation": u() * c.saturation,
                    "contrast": u() + c.contrast}
        if op == "flip":
            return {"op": op, "flip": u() < c.flip_p}
        if op == "scale":
            lo = 1.0 / c.scale
            return {"op": op, "sx": u() * (c.scale - lo) + lo, "sy": u() * (c.scale - lo) + lo}
        if op == "rotate":
            return {"op": op, "angle": (u() - 0.5) * 2 * c.rotate_deg / 180 * math.pi}
        if op == "crop":
            sh, sw = int(h * c.crop + 0.5), int(w * c.crop + 0.5)
            return {"op": op, "pad": (sh, sw), "dy": torch.randint(-sh, sh + 1, (n,), generator=generator),
                    "dx": torch.randint(-sw, sw + 1, (n,), generator=generator)}
        # cutout
        ch, cw = int(h * c.cutout + 0.5), int(w * c.cutout + 0.5)
        return {"op": op, "size": (ch, cw), "cy": torch.randint(0, h + (1 - ch % 2), (n,), generator=generator),
                "cx": torch.randint(0, w + (1 - cw % 2), (n,), generator=generator)}

    def apply(self, x: torch.Tensor, p: dict) -> torch.Tensor:
        op = p["op"]
        if op == "none":
            return x
        n = x.shape[0]

        def per_image(t: torch.Tensor, dtype=None) -> torch.Tensor:
            t = t.to(device=x.device, dtype=dtype or t.dtype)
            return t.expand(n) if t.shape[0] == 1 else t

        if op == "color":
            x = x + per_image(p["brightness"], x.dtype).view(-1, 1, 1, 1)
            m = x.mean(dim=1, keepdim=True)
            x = (x - m) * per_image(p["saturation"], x.dtype).view(-1, 1, 1, 1) + m
            m = x.mean(dim=(1, 2, 3), keepdim=True)
            return (x - m) * per_image(p["contrast"], x.dtype).view(-1, 1, 1, 1) + m
        if op == "flip":
            mask = per_image(p["flip"]).view(-1, 1, 1, 1)
            return torch.where(mask, x.flip(3), x)
        if op in ("scale", "rotate"):
            zeros = torch.zeros(n, device=x.device, dtype=x.dtype)
            if op == "scale":
                sx, sy = per_image(p["sx"], x.dtype), per_image(p["sy"], x.dtype)
                theta = torch.stack([torch.stack([sx, zeros, zeros], 1), torch.stack([zeros, sy, zeros], 1)], 1)
            else:
                a = per_image(p["angle"], x.dtype)
                theta = torch.stack([torch.stack([a.cos(), -a.sin(), zeros], 1),
                                     torch.stack([a.sin(), a.cos(), zeros], 1)], 1)
            grid = F.affine_grid(theta, list(x.shape), align_corners=True)
            return F.grid_sample(x, grid, align_corners=True)
        h, w = x.shape[2], x.shape[3]
        if op == "crop":
            sh, sw = p["pad"]
            padded = F.pad(x, [sw, sw, sh, sh])
            rows = torch.arange(h, device=x.device).view(1, h, 1) + sh + per_image(p["dy"]).view(-1, 1, 1)
            cols = torch.arange(w, device=x.device).view(1, 1, w) + sw + per_image(p["dx"]).view(-1, 1, 1)
            batch = torch.arange(n, device=x.device).view(-1, 1, 1)
            return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
        if op == "cutout":
            ch, cw = p["size"]
            top = (per_image(p["cy"]) - ch // 2).view(-1, 1, 1)
            left = (per_image(p["cx"]) - cw // 2).view(-1, 1, 1)
            r = torch.arange(h, device=x.device).view(1, h, 1)
            c = torch.arange(w, device=x.device).view(1, 1, w)
            inside = (r >= top) & (r < top + ch) & (c >= left) & (c < left + cw)
            return x * (~inside).unsqueeze(1).to(x.dtype)
        raise ConfigError(f"unknown DSA operation {op!r}")

"""Networks of the dataset-condensation family, each with ``embed`` (features) and ``classifier``.

``create_model(name, channels, num_classes, image_size, **kw)`` builds any registered network;
``list_models()`` names them. ``init_weights_(model, generator)`` re-draws every parameter from an
explicit generator (PyTorch's default schemes), which is how a distiller gets "a fresh random
network" each iteration without building a new module.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._registry import Registry
from .errors import ConfigError

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def list_models(pattern: str = "*") -> list[str]:
    return MODELS.names(pattern)


def create_model(name: str, channels: int = 3, num_classes: int = 10, image_size: int | tuple[int, int] = 32,
                 **kwargs) -> "DDNet":
    builder = MODELS.get(name)
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    return builder(channels=channels, num_classes=num_classes, image_size=size, **kwargs)


def norm_layer(kind: str, channels: int) -> nn.Module:
    """instance = GroupNorm(C, C, affine) as in the DC family; batch = BatchNorm2d; none = identity."""
    if kind == "instance":
        return nn.GroupNorm(channels, channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"unknown norm {kind!r}; choose instance, batch or none")


class DDNet(nn.Module):
    """Base: ``forward(x) = classifier(embed(x))``; ``embed`` returns the flat penultimate feature."""

    feature_dim: int

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))

    def _set_classifier(self, channels: int, image_size: tuple[int, int], num_classes: int) -> None:
        self.eval()  # the shape probe must not touch batch-norm running statistics
        with torch.no_grad():
            self.feature_dim = int(self.embed(torch.zeros(2, channels, *image_size)).shape[1])
        self.train()
        self.classifier = nn.Linear(self.feature_dim, num_classes)


# ----------------------------------------------------------------------------- ConvNet
class ConvNet(DDNet):
    """depth x [Conv3x3(width)+bias, norm, ReLU, pool]; flatten; Linear."""

    def __init__(self, channels, num_classes, image_size, width=128, depth=3, norm="instance",
                 pooling="avg"):
        super().__init__()
        layers: list[nn.Module] = []
        c = channels
        for d in range(depth):
            # single-channel (MNIST-family) inputs: padding 3 on the first conv, as in the DC family
            layers += [nn.Conv2d(c, width, 3, padding=3 if channels == 1 and d == 0 else 1),
                       norm_layer(norm, width), nn.ReLU(inplace=True)]
            if pooling == "avg":
                layers.append(nn.AvgPool2d(2, 2))
            elif pooling == "max":
                layers.append(nn.MaxPool2d(2, 2))
            elif pooling != "none":
                raise ConfigError(f"unknown pooling {pooling!r}; choose avg, max or none")
            c = width
        self.features = nn.Sequential(*layers)
        self._set_classifier(channels, image_size, num_classes)

    def embed(self, x):
        return self.features(x).flatten(1)


def _convnet(depth):
    def build(channels, num_classes, image_size, **kw):
        return ConvNet(channels, num_classes, image_size, depth=kw.pop("depth", depth), **kw)
    return build


MODELS.register("convnet", _convnet(3))
MODELS.register("convnet3", _convnet(3))
MODELS.register("convnet4", _convnet(4))
MODELS.register("convnet3_bn", lambda **kw: ConvNet(depth=3, norm="batch", **kw))


# ----------------------------------------------------------------------------- AlexNet
class AlexNet(DDNet):
    """The DC-family AlexNet (no normalisation)."""

    def __init__(self, channels, num_classes, image_size):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 128, 5, padding=4 if channels == 1 else 2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(128, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(192, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 192, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(192, 192, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self._set_classifier(channels, image_size, num_classes)

    def embed(self, x):
        return self.features(x).flatten(1)


MODELS.register("alexnet", lambda **kw: AlexNet(**kw))


# ----------------------------------------------------------------------------- VGG11
class VGG11(DDNet):
    cfg = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")

    def __init__(self, channels, num_classes, image_size, norm="instance"):
        super().__init__()
        layers: list[nn.Module] = []
        c = channels
        for i, v in enumerate(self.cfg):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=3 if channels == 1 and i == 0 else 1),
                           norm_layer(norm, v), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)
        self._set_classifier(channels, image_size, num_classes)

    def embed(self, x):
        return self.features(x).flatten(1)


MODELS.register("vgg11", lambda **kw: VGG11(norm=kw.pop("norm", "instance"), **kw))
MODELS.register("vgg11_bn", lambda **kw: VGG11(norm="batch", **kw))


# ----------------------------------------------------------------------------- ResNet-18
class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, norm, avg_down):
        super().__init__()
        conv_stride = 1 if avg_down else stride
        self.conv1 = nn.Conv2d(cin, cout, 3, conv_stride, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2) if avg_down and stride != 1 else nn.Identity()
        self.bn1 = norm_layer(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = norm_layer(norm, cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            down = [nn.Conv2d(cin, cout, 1, 1, bias=False), nn.AvgPool2d(2, 2)] if avg_down else \
                [nn.Conv2d(cin, cout, 1, stride, bias=False)]
            self.shortcut = nn.Sequential(*down, norm_layer(norm, cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.pool(self.conv1(x))))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(DDNet):
    """DC-family ResNet-18: 3x3 stem without max-pool, stages 64/128/256/512 x 2 BasicBlocks,
    strides 1/2/2/2, 4x4 average pool (512-d feature at 32x32, 2048-d at 64x64), Linear.
    ``avg_down=True`` is ResNet-18-AP (average-pool downsampling instead of strided convs)."""

    def __init__(self, channels, num_classes, image_size, norm="instance", width=64, avg_down=False):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, 1, 1, bias=False), norm_layer(norm, width),
                                  nn.ReLU(inplace=True))
        blocks, c = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            cout = width * 2 ** i
            blocks += [BasicBlock(c, cout, stride, norm, avg_down), BasicBlock(cout, cout, 1, norm, avg_down)]
            c = cout
        self.layers = nn.Sequential(*blocks)
        self._set_classifier(channels, image_size, num_classes)

    def embed(self, x):
        out = self.layers(self.stem(x))
        # a 4x4 average pool as in the DC family (smaller maps, e.g. ResNet-18-AP at 28x28, pool whole)
        return F.avg_pool2d(out, min(4, out.shape[-2], out.shape[-1])).flatten(1)


MODELS.register("resnet18", lambda **kw: ResNet18(norm=kw.pop("norm", "instance"), **kw))
MODELS.register("resnet18_bn", lambda **kw: ResNet18(norm="batch", **kw))
MODELS.register("resnet18_ap", lambda **kw: ResNet18(avg_down=True, norm=kw.pop("norm", "instance"), **kw))


# ----------------------------------------------------------------------------- init
@torch.no_grad()
def init_weights_(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-draw every parameter in place from ``generator`` with PyTorch's default schemes
    (kaiming-uniform(a=sqrt 5) weights, uniform(+-1/sqrt(fan_in)) biases, norms to 1/0).
    Draws happen on the CPU, so a seed gives the same network on any device."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w = torch.empty(m.weight.shape)
            nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=generator)
            m.weight.copy_(w)
            if m.bias is not None:
                fan_in = w[0].numel()
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                m.bias.copy_(torch.empty(m.bias.shape).uniform_(-bound, bound, generator=generator))
        elif isinstance(m, (nn.GroupNorm, nn.BatchNorm2d)):
            if m.weight is not None:
                m.weight.fill_(1.0)
                m.bias.zero_()
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
    return model


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.BatchNorm2d) for m in model.modules())

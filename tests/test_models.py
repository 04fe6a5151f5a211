import pytest
import torch

import ddcmi
from ddcmi.models import create_model, has_batchnorm, init_weights_, list_models


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("channels,size", [(3, 32), (1, 28)])
def test_every_model_embeds_and_classifies(name, channels, size):
    m = create_model(name, channels=channels, num_classes=7, image_size=size)
    x = torch.randn(2, channels, size, size)
    feat = m.embed(x)
    assert feat.shape == (2, m.feature_dim)
    assert m(x).shape == (2, 7)
    assert torch.allclose(m.classifier(feat), m(x))


def test_convnet3_shapes_match_the_spec():
    m = create_model("convnet3", 3, 10, 32)
    assert m.feature_dim == 2048
    convs = [l for l in m.modules() if isinstance(l, torch.nn.Conv2d)]
    assert len(convs) == 3 and all(c.out_channels == 128 and c.bias is not None for c in convs)
    assert all(isinstance(l, torch.nn.GroupNorm) and l.num_groups == l.num_channels == 128
               for l in m.modules() if isinstance(l, torch.nn.GroupNorm))
    assert create_model("convnet4", 3, 200, 64).feature_dim == 2048


def test_resnet18_feature_is_512_at_32px_and_2048_at_64px():
    assert create_model("resnet18", 3, 10, 32).feature_dim == 512
    assert create_model("resnet18", 3, 200, 64).feature_dim == 2048
    assert not has_batchnorm(create_model("resnet18", 3, 10, 32))
    assert has_batchnorm(create_model("resnet18_bn", 3, 10, 32))
    ap = create_model("resnet18_ap", 3, 10, 32)
    assert ap.feature_dim == 512
    assert all(c.stride == (1, 1) for c in ap.modules() if isinstance(c, torch.nn.Conv2d))


def test_alexnet_has_no_norm_and_vgg11_has_instance_norm():
    alex = create_model("alexnet", 3, 10, 32)
    assert not any(isinstance(l, (torch.nn.GroupNorm, torch.nn.BatchNorm2d)) for l in alex.modules())
    vgg = create_model("vgg11", 3, 10, 32)
    assert sum(isinstance(l, torch.nn.GroupNorm) for l in vgg.modules()) == 8
    assert vgg.feature_dim == 512


def test_init_weights_is_seeded():
    a, b = create_model("convnet3", 3, 10, 32), create_model("convnet3", 3, 10, 32)
    init_weights_(a, torch.Generator().manual_seed(1))
    init_weights_(b, torch.Generator().manual_seed(1))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    init_weights_(b, torch.Generator().manual_seed(2))
    assert not torch.equal(a.features[0].weight, b.features[0].weight)


def test_unknown_model_and_norm():
    with pytest.raises(ddcmi.UnknownNameError, match="unknown model 'resnet19'"):
        create_model("resnet19")
    with pytest.raises(ddcmi.ConfigError, match="unknown norm"):
        create_model("convnet3", norm="layer")

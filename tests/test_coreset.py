import torch

from ddcmi.coreset import herding, random_subsets


def test_herding_matches_the_class_mean_better_than_random(mnist):
    sampler = mnist.real_sampler()

    def embed(x):  # a fixed, simple feature map: 7x7 average pooled pixels
        return torch.nn.functional.avg_pool2d(x, 4).flatten(1)

    x, y = herding(sampler, 5, embed)
    assert x.shape == (50, 1, 28, 28) and torch.equal(y, torch.arange(10).repeat_interleave(5))
    assert torch.equal(herding(sampler, 5, embed)[0], x)  # deterministic

    def gap(images, c):
        return (embed(images).mean(0) - embed(sampler.by_class[c]).mean(0)).norm()

    rnd = random_subsets(sampler, 5, seeds=range(5))
    herd_gap = sum(gap(x[y == c], c) for c in range(10))
    rand_gap = sum(sum(gap(rx[ry == c], c) for c in range(10)) for rx, ry in rnd) / len(rnd)
    assert herd_gap < 0.5 * rand_gap

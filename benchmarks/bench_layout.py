"""Does the channels-last memory layout speed up the kit's network passes on this machine?

    python benchmarks/bench_layout.py                 # CIFAR-sized inputs, 5 interleaved repeats
    python benchmarks/bench_layout.py --repeats 9 --channels 1 --size 28

The passes a distillation step, an evaluation and a proxy pool are made of, at paper sizes, each timed in
the default NCHW layout and in ``torch.channels_last`` (network and input converted), alternating in this one
process (the median of ``--repeats`` after a warm-up each):

- ConvNet-3, no-grad embedding of 256 real images (DM's real side, one class);
- ConvNet-3, embedding of 100 synthetic images and its gradient with respect to them (DM's synthetic side);
- ResNet-18 (instance norm, full width), logits of 100 synthetic images and their input gradient (the CMI term);
- ConvNet-3, a training step (forward, backward, SGD) on 256 images (evaluation and pools).

The layouts compute the same function; how exactly is printed beside the ratio: each layout's largest
difference from the same pass in float64 (NCHW), relative to the largest value of the float64 output (for
the training step, its first loss). ``NCHW / channels-last`` above 1 means channels-last is faster.
"""
from __future__ import annotations

import argparse
import statistics

import torch
from bench_dm import _timed  # the same clock as the other benchmarks (CUDA synchronised)


def passes(channels: int, size: int, device, layout, dtype=torch.float32):
    """name -> (callable returning a tensor) for one memory layout (and precision); the same weights and
    inputs for every layout."""
    from ddcmi.models import create_model, init_weights_
    g = torch.Generator().manual_seed(0)

    def net(name):
        m = init_weights_(create_model(name, channels, 10, size), torch.Generator().manual_seed(1))
        return m.to(device, dtype, memory_format=layout)

    def data(n):
        return torch.randn(n, channels, size, size, generator=g).to(device, dtype).contiguous(memory_format=layout)

    conv, resnet, train_net = net("convnet3").requires_grad_(False), net("resnet18").eval().requires_grad_(False), net("convnet3")
    real, syn, batch = data(256), data(100), data(256)
    labels = torch.arange(256, device=device) % 10
    w = torch.randn(10, generator=g).to(device, dtype)  # a fixed random read-out of the logits
    opt = torch.optim.SGD(train_net.parameters(), lr=0.01, momentum=0.9)

    def real_embed():
        with torch.no_grad():
            return conv.embed(real)

    def syn_embed_grad():
        x = syn.detach().requires_grad_(True)
        return torch.autograd.grad(conv.embed(x).square().mean(), x)[0]

    def cmi_pass():
        x = syn.detach().requires_grad_(True)
        return torch.autograd.grad((resnet(x) @ w).sum(), x)[0]

    def train_step():
        loss = torch.nn.functional.cross_entropy(train_net(batch), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return {"ConvNet-3 embed, 256 real, no grad": real_embed,
            "ConvNet-3 embed + input grad, 100 synthetic": syn_embed_grad,
            "ResNet-18 logits + input grad, 100 synthetic": cmi_pass,
            "ConvNet-3 training step, 256 images": train_step}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import ddcmi
    device = ddcmi.utils.pick_device(args.device)
    print(f"machine: {ddcmi.utils.device_name(device)}, torch {torch.__version__}, "
          f"allocator {ddcmi._malloc.status()}; inputs {args.channels} x {args.size} x {args.size}\n")
    plain = passes(args.channels, args.size, device, torch.contiguous_format)
    last = passes(args.channels, args.size, device, torch.channels_last)
    exact = passes(args.channels, args.size, device, torch.contiguous_format, torch.float64)
    print("| pass | NCHW (s) | channels-last (s) | NCHW / channels-last | error vs fp64: NCHW | channels-last |")
    print("|---|---|---|---|---|---|")
    for name in plain:
        a, b = plain[name], last[name]
        ref = exact[name]().double()  # each from the same weights (a training step: before the timed ones move them)
        err = [((fn().double() - ref).abs().max() / ref.abs().max()).item() for fn in (a, b)]
        times = {a: [], b: []}
        for _ in range(args.repeats):
            for fn in (a, b):
                times[fn].append(_timed(fn, device))
        ta, tb = statistics.median(times[a]), statistics.median(times[b])
        print(f"| {name} | {ta:.3f} | {tb:.3f} | {ta / tb:.2f}x | {err[0]:.1e} | {err[1]:.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

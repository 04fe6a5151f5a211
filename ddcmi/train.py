"""The one training loop: proxy pools, evaluation networks, DC/DSA's inner loop, IDC's network
training on real data (and later IDM's queue and MTT's experts) all train through it.

- :func:`sgd_steps`: the inner loop over given batches: optional DSA (an independent draw per image),
  optional CutMix, cross-entropy, ``zero_grad`` / ``backward`` / ``step``;
- :func:`epoch_batches`: one epoch of a fixed tensor set in a random order from an explicit generator;
- :func:`train_epochs`: whole epochs with the protocol's step schedule (lr x ``lr_gamma`` at the
  fractions ``lr_milestones`` of the epochs), resumable at an epoch (``start_epoch``, ``on_epoch``
  called after each one: where a caller checkpoints).

Every random draw comes from the ``generator`` passed in, in a fixed order (per epoch: the order,
then per batch: DSA, then CutMix), so a seed gives the same network on any device.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .augment import DSA, DSAConfig
from .utils import bf16_autocast


@dataclass(frozen=True)
class Recipe:
    """An SGD recipe. The evaluation protocol, the proxy recipe and the inner loops are instances."""

    epochs: int = 1
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    lr_milestones: tuple[float, ...] = ()
    lr_gamma: float = 0.1
    cutmix_prob: float = 0.0
    dsa: DSAConfig = field(default_factory=lambda: DSAConfig(strategy="none"))
    bf16: bool = False  # forward and loss under bf16 autocast (weights, gradients and SGD stay fp32)
    # torch.compile the network's forward (and so its backward): the same arithmetic with the memory-bound
    # layers fused, equal to eager within float rounding; compiled once per architecture and process
    compile: bool = False

    def optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        return torch.optim.SGD(model.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)


def cutmix(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator):
    """CutMix with a Beta(1, 1) area: a random box of a shuffled batch pasted in; returns the mixed
    batch, both label sets and the kept fraction of the area."""
    n, _, h, w = x.shape
    lam = float(torch.rand((), generator=generator))
    ch, cw = int(h * (1 - lam) ** 0.5), int(w * (1 - lam) ** 0.5)
    cy, cx = (int(v) for v in torch.randint(0, h, (1,), generator=generator).tolist() +
              torch.randint(0, w, (1,), generator=generator).tolist())
    y0, y1, x0, x1 = max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)
    perm = torch.randperm(n, generator=generator).to(x.device)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
    return x, y, y[perm], 1 - (y1 - y0) * (x1 - x0) / (h * w)


def epoch_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator) -> Iterator:
    """One epoch over (x, y) in a random order drawn from ``generator``."""
    order = torch.randperm(len(y), generator=generator).to(x.device)
    for s in range(0, len(y), batch_size):
        idx = order[s:s + batch_size]
        yield x[idx], y[idx]


def augment_batch(xb: torch.Tensor, yb: torch.Tensor, generator: torch.Generator, dsa: DSA | None = None,
                  cutmix_prob: float = 0.0):
    """A training batch's random draws, in the trainer's fixed order (DSA per image, then CutMix):
    (images, labels, CutMix's second labels, kept area), the last two None without CutMix."""
    if dsa is not None and dsa.enabled:
        xb = dsa(xb, generator, siamese=False)
    if cutmix_prob > 0 and float(torch.rand((), generator=generator)) < cutmix_prob:
        return cutmix(xb, yb, generator)
    return xb, yb, None, None


def sgd_steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable, generator: torch.Generator,
              dsa: DSA | None = None, cutmix_prob: float = 0.0, on_step: Callable[[], None] | None = None,
              observe: Callable[[torch.Tensor, torch.Tensor], None] | None = None, bf16: bool = False) -> int:
    """One optimiser step per batch; returns the number of steps. ``observe(logits, labels)`` sees each
    batch's (detached) logits before the step (a running training accuracy: IDM's queue). ``bf16``: the
    forward pass and the loss under bf16 autocast (the parameters and their update stay fp32)."""
    steps = 0
    for xb, yb in batches:
        xb, ya, yc, keep = augment_batch(xb, yb, generator, dsa, cutmix_prob)
        with bf16_autocast(xb.device, bf16):
            out = model(xb)
            if keep is not None:
                loss = keep * F.cross_entropy(out, ya) + (1 - keep) * F.cross_entropy(out, yc)
            else:
                loss = F.cross_entropy(out, yb)
        if keep is None and observe is not None:
            observe(out.detach(), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
        if on_step is not None:
            on_step()
    return steps


def train_epochs(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, generator: torch.Generator,
                 optimizer: torch.optim.Optimizer | None = None, start_epoch: int = 0,
                 on_epoch: Callable[[int, torch.optim.Optimizer], None] | None = None,
                 progress: bool = False, desc: str = "train") -> torch.nn.Module:
    """``recipe.epochs`` epochs of SGD on (x, y) (from ``start_epoch`` when resuming: the caller
    restores the model, the optimiser and the generator saved by ``on_epoch``). Returns the model in
    train mode; callers switch to eval."""
    optimizer = optimizer or recipe.optimizer(model)
    decay_epochs = _decay_epochs(recipe)
    _resume_lr(optimizer, recipe, start_epoch)
    dsa = DSA(recipe.dsa)
    steps_per_epoch = (len(y) + recipe.batch_size - 1) // recipe.batch_size
    bar = tqdm(total=recipe.epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch, desc=desc,
               leave=False, disable=not progress)
    model.train()
    # the compiled module shares ``model``'s parameters: the optimiser, checkpoints and callers see ``model``
    net = torch.compile(model) if recipe.compile else model
    for epoch in range(start_epoch, recipe.epochs):
        if epoch in decay_epochs:
            for group in optimizer.param_groups:
                group["lr"] *= recipe.lr_gamma
        sgd_steps(net, optimizer, epoch_batches(x, y, recipe.batch_size, generator), generator, dsa,
                  recipe.cutmix_prob, on_step=bar.update, bf16=recipe.bf16)
        if on_epoch is not None:
            on_epoch(epoch + 1, optimizer)
    bar.close()
    return model


def _decay_epochs(recipe: Recipe) -> set[int]:
    return {int(f * recipe.epochs) for f in recipe.lr_milestones}


def _resume_lr(optimizer: torch.optim.Optimizer, recipe: Recipe, start_epoch: int) -> None:
    """Set the learning rate of the epochs already done (the schedule multiplied in the same order)."""
    if start_epoch:
        lr = recipe.lr
        for _ in sorted(e for e in _decay_epochs(recipe) if e < start_epoch):
            lr *= recipe.lr_gamma
        for group in optimizer.param_groups:
            group["lr"] = lr


def skip_training_draws(x: torch.Tensor, y: torch.Tensor, recipe: Recipe, generator: torch.Generator) -> None:
    """Advance ``generator`` exactly as :func:`train_epochs` on (x, y) would, without training (the draws
    of a network's whole training depend only on shapes, never on the network)."""
    dsa = DSA(recipe.dsa)
    for _ in range(recipe.epochs):
        for xb, yb in epoch_batches(x, y, recipe.batch_size, generator):
            augment_batch(xb, yb, generator, dsa, recipe.cutmix_prob)


def stacked_gradients(template: torch.nn.Module, stacks: dict, xs: torch.Tensor, ya: torch.Tensor, yc: torch.Tensor,
                      keep: torch.Tensor, bf16: bool = False) -> dict:
    """The cross-entropy gradients of K stacked networks, each on its own batch: one vmapped forward and
    backward (``torch.func``) of ``template`` (a "meta" copy of the architecture) over ``stacks`` (name ->
    K x parameter, as ``stack_module_state`` gives them); ``xs`` is K x batch, ``ya``/``yc`` the labels and
    CutMix's second labels, ``keep`` CutMix's kept area (1 without CutMix: 1 * CE + 0 * CE is CE itself).

    The gradients are taken at detached views of the stacks and carry no autograd graph: torch.func.grad of
    inputs that require grad returns gradients differentiable back to them, and stored as ``.grad`` they
    kept every step's activations alive in a reference cycle (about 2.5 GB a call for 5 ConvNet-3s on 100
    MNIST images, until the process ran out of memory)."""
    from torch.func import functional_call, grad, vmap

    def loss_of(p, xb, a, c, k):
        with bf16_autocast(xb.device, bf16):
            out = functional_call(template, p, (xb,))
            return k * F.cross_entropy(out, a) + (1 - k) * F.cross_entropy(out, c)

    return vmap(grad(loss_of))({n: t.detach() for n, t in stacks.items()}, xs, ya, yc, keep)


def train_epochs_stacked(models: list[torch.nn.Module], x: torch.Tensor, y: torch.Tensor, recipe: Recipe,
                         generators: list[torch.Generator], progress: bool = False, desc: str = "train",
                         optimizer_states: list[dict] | None = None, start_epoch: int = 0,
                         on_epoch: Callable[[int, Callable[[int], dict]], None] | None = None) -> list:
    """:func:`train_epochs` for several networks of one architecture at once: their parameters stacked
    (``torch.func``), one vmapped forward and backward per step for all of them (:func:`stacked_gradients`),
    one SGD step on the stacks. Network k takes its draws from ``generators[k]`` in train_epochs' order, so
    each ends as train_epochs would leave it, within float rounding (vmapped convolutions sum in another
    order; tests/test_evaluate_stacked.py). Networks with buffers (batch norm) are refused: use train_epochs.

    Resuming as train_epochs does: from ``start_epoch``, with each network's own optimiser state (the
    ``state_dict`` of its one-network SGD) in ``optimizer_states``. After each epoch the networks hold
    their parameters and ``on_epoch(epoch, optimizer_state)`` runs, ``optimizer_state(k)`` giving network
    k's optimiser state in that one-network form (so a checkpoint resumes by either trainer)."""
    import copy

    from torch.func import stack_module_state

    if any(has_buffers(m) for m in models):
        raise ValueError("train_epochs_stacked needs networks without buffers (no batch norm); use train_epochs")
    if recipe.compile:
        raise ValueError("train_epochs_stacked does not compile; use train_epochs for a compiled recipe")
    params, _ = stack_module_state(models)
    names = list(params)  # named_parameters' order: the order of each network's own optimiser
    template = copy.deepcopy(models[0]).to("meta")
    stacks = [params[n] for n in names]
    optimizer = torch.optim.SGD(stacks, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    if optimizer_states is not None:
        optimizer.load_state_dict(_stacked_optimizer_state(optimizer_states))
    _resume_lr(optimizer, recipe, start_epoch)
    dsa, decay = DSA(recipe.dsa), _decay_epochs(recipe)
    steps_per_epoch = (len(y) + recipe.batch_size - 1) // recipe.batch_size
    bar = tqdm(total=recipe.epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch, desc=desc, leave=False,
               disable=not progress)

    def unstack() -> None:
        with torch.no_grad():
            for k, m in enumerate(models):
                m.load_state_dict({n: params[n][k] for n in names})

    for epoch in range(start_epoch, recipe.epochs):
        if epoch in decay:
            for group in optimizer.param_groups:
                group["lr"] *= recipe.lr_gamma
        for batches in zip(*(epoch_batches(x, y, recipe.batch_size, g) for g in generators)):
            drawn = [augment_batch(xb, yb, g, dsa, recipe.cutmix_prob) for (xb, yb), g in zip(batches, generators)]
            xs = torch.stack([d[0] for d in drawn])
            ya = torch.stack([d[1] for d in drawn])
            yc = torch.stack([d[1] if d[2] is None else d[2] for d in drawn])
            keep = torch.tensor([1.0 if d[3] is None else float(d[3]) for d in drawn], device=x.device)
            grads = stacked_gradients(template, params, xs, ya, yc, keep, recipe.bf16)
            for n in names:
                params[n].grad = grads[n]
            optimizer.step()
            bar.update()
        if on_epoch is not None:
            unstack()
            on_epoch(epoch + 1, lambda k: _member_optimizer_state(optimizer, k))
    bar.close()
    unstack()
    return models


def has_buffers(model: torch.nn.Module) -> bool:
    """Whether ``model`` has buffers (batch norm's running statistics): such networks are not stacked."""
    return any(True for _ in model.buffers())


def _member_optimizer_state(optimizer: torch.optim.Optimizer, k: int) -> dict:
    """Network k's part of a stacked SGD's state, as its own one-network SGD's ``state_dict`` (copied: a
    saved view would carry the whole stack)."""
    import copy
    sd = optimizer.state_dict()
    state = {i: {name: t[k].clone() if torch.is_tensor(t) and t.dim() else t for name, t in s.items()}
             for i, s in sd["state"].items()}
    return {"state": state, "param_groups": copy.deepcopy(sd["param_groups"])}


def _stacked_optimizer_state(states: list[dict]) -> dict:
    """The stacked SGD's ``state_dict`` from each network's own (:func:`_member_optimizer_state` reversed)."""
    first = states[0]
    state = {i: {name: torch.stack([s["state"][i][name] for s in states]) if torch.is_tensor(t) and t.dim() else t
                 for name, t in entry.items()} for i, entry in first["state"].items()}
    return {"state": state, "param_groups": first["param_groups"]}


def _saved_partial(path: Path | None, fmt: str, matches: Callable[[dict], bool]) -> dict | None:
    """The partial-training checkpoint at ``path`` when there is one that ``matches``, else None."""
    from .utils import load_artefact
    if path is None or not path.exists():
        return None
    saved = load_artefact(path, fmt, "partial training checkpoint", f"delete {path} (that network restarts)")
    return saved if matches(saved) else None


def _save_partial(path: Path, fmt: str, header: dict, epoch: int, model: torch.nn.Module, optimizer_state: dict,
                  generator: torch.Generator, extra: dict | None = None) -> None:
    from .utils import atomic_torch_save
    atomic_torch_save({"format": fmt, **header, "epoch": epoch, "state_dict": model.state_dict(),
                       "optimizer": optimizer_state, "generator": generator.get_state(), **(extra or {})}, path)


def resumable_training(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe,
                       generator: torch.Generator, path: Path | None, fmt: str, header: dict,
                       matches: Callable[[dict], bool], progress: bool = False, desc: str = "train",
                       on_epoch: Callable[[int], None] | None = None, extra_state: Callable[[], dict] | None = None,
                       restore: Callable[[dict], None] | None = None) -> torch.nn.Module:
    """:func:`train_epochs` checkpointed after every epoch to ``path`` (model, optimiser, generator, the
    caller's ``header`` and ``extra_state()``) and resumed from it when ``matches(saved)`` (then
    ``restore(saved)`` gets the caller's part back), so an interrupted network loses at most an epoch.
    ``on_epoch(epoch)`` runs after each epoch, before the checkpoint (MTT's experts record their
    parameters there). The last epoch writes no checkpoint: the caller saves the result."""
    optimizer, start = recipe.optimizer(model), 0
    saved = _saved_partial(path, fmt, matches)
    if saved is not None:
        model.load_state_dict(saved["state_dict"])
        optimizer.load_state_dict(saved["optimizer"])
        generator.set_state(saved["generator"])
        start = saved["epoch"]
        if restore is not None:
            restore(saved)

    def after_epoch(epoch: int, opt: torch.optim.Optimizer) -> None:
        if on_epoch is not None:
            on_epoch(epoch)
        if path is not None and epoch < recipe.epochs:
            _save_partial(path, fmt, header, epoch, model, opt.state_dict(), generator,
                          extra_state() if extra_state is not None else None)

    return train_epochs(model, x, y, recipe, generator, optimizer=optimizer, start_epoch=start, on_epoch=after_epoch,
                        progress=progress, desc=desc)


class Checkpoint(NamedTuple):
    """Where and how :func:`resumable_training_stacked` checkpoints one of its networks: the arguments of
    the same name of :func:`resumable_training`."""
    path: Path | None
    header: dict
    matches: Callable[[dict], bool]
    extra_state: Callable[[], dict] | None = None
    restore: Callable[[dict], None] | None = None


def fresh_networks(new_network: Callable[[], torch.nn.Module], seed: int, indices: list[int],
                   device) -> tuple[list[torch.nn.Module], list[torch.Generator]]:
    """Members ``indices`` of a collection drawn from ``seed`` (a proxy pool, MTT's experts), untrained: member
    i's generator is seeded ``seed * 1_000_003 + i`` and draws its initial weights, then its training's draws.
    Returns (networks, generators)."""
    from .models import init_weights_
    gens = [torch.Generator().manual_seed(seed * 1_000_003 + i) for i in indices]
    return [init_weights_(new_network(), g).to(device) for g in gens], gens


def group_name(noun: str, indices: list[int]) -> str:
    """"member 4", or "member 4-7" for members trained together."""
    return f"{noun} {indices[0]}" + (f"-{indices[-1]}" if len(indices) > 1 else "")


def member_checkpoint(path: Path | None, config, index: int, extra_state: Callable[[], dict] | None = None,
                      restore: Callable[[dict], None] | None = None) -> Checkpoint:
    """The checkpoint of member ``index`` of a cached collection built from ``config`` (a proxy pool, MTT's
    experts): it resumes only for the same config and index."""
    import dataclasses

    from .keys import same_config
    return Checkpoint(path, {"config": dataclasses.asdict(config), "index": index},
                      lambda saved: same_config(saved.get("config") or {}, config) and saved.get("index") == index,
                      extra_state, restore)


def resumable_training_stacked(models: list[torch.nn.Module], x: torch.Tensor, y: torch.Tensor, recipe: Recipe,
                               generators: list[torch.Generator], checkpoints: list[Checkpoint], fmt: str,
                               progress: bool = False, desc: str = "train",
                               on_epoch: Callable[[int, int], None] | None = None) -> list[torch.nn.Module]:
    """:func:`resumable_training` for networks trained together (:func:`train_epochs_stacked`): network k
    is checkpointed after every epoch to its own ``checkpoints[k]`` in the very form resumable_training
    writes, so either trainer resumes it. Networks whose checkpoints stand at different epochs (an
    interruption between two of the writes) resume one by one. ``on_epoch(k, epoch)`` runs after each
    epoch for each network, before its checkpoint."""
    def one(k: int) -> torch.nn.Module:
        c = checkpoints[k]
        return resumable_training(models[k], x, y, recipe, generators[k], c.path, fmt, c.header, c.matches, progress,
                                  desc, None if on_epoch is None else (lambda epoch: on_epoch(k, epoch)),
                                  c.extra_state, c.restore)

    saved = [_saved_partial(c.path, fmt, c.matches) for c in checkpoints]
    starts = {0 if s is None else s["epoch"] for s in saved}
    if len(models) == 1 or len(starts) > 1:
        return [one(k) for k in range(len(models))]
    start, states = starts.pop(), None
    if start:
        for model, g, s, c in zip(models, generators, saved, checkpoints):
            model.load_state_dict(s["state_dict"])
            g.set_state(s["generator"])
            if c.restore is not None:
                c.restore(s)
        states = [s["optimizer"] for s in saved]

    def after_epoch(epoch: int, optimizer_state: Callable[[int], dict]) -> None:
        for k, c in enumerate(checkpoints):
            if on_epoch is not None:
                on_epoch(k, epoch)
            if c.path is not None and epoch < recipe.epochs:
                _save_partial(c.path, fmt, c.header, epoch, models[k], optimizer_state(k), generators[k],
                              c.extra_state() if c.extra_state is not None else None)

    return train_epochs_stacked(models, x, y, recipe, generators, progress, desc, optimizer_states=states,
                                start_epoch=start, on_epoch=after_epoch)


def build_missing(directory: Path, noun: str, what: str, count: int, epochs: int, partial_fmt: str,
                  train: Callable[[list[int]], list[float]], progress: bool = True, desc: str = "",
                  group: int = 1) -> None:
    """Train the members ``<noun>_<i:04d>.pt`` of a cached collection (a proxy pool, MTT's experts) that
    ``directory`` lacks, ``group`` at a time: ``train(indices)`` trains those members (each checkpointed per
    epoch in ``<noun>_<i:04d>.partial.pt``), saves them atomically and returns their test accuracies. On
    Ctrl-C it says what is kept and how to resume."""
    from .utils import load_artefact
    missing = [i for i in range(count) if not (directory / f"{noun}_{i:04d}.pt").exists()]
    if not missing:
        return
    bar = tqdm(total=count, initial=count - len(missing), desc=desc, disable=not progress)
    for start in range(0, len(missing), group):
        indices = missing[start:start + group]
        try:
            accs = train(indices)
        except KeyboardInterrupt:
            bar.close()
            done = sum((directory / f"{noun}_{k:04d}.pt").exists() for k in range(count))
            kept = []
            for i in indices:
                partial = directory / f"{noun}_{i:04d}.partial.pt"
                epoch = load_artefact(partial, partial_fmt, f"partial {noun}", "delete it")["epoch"] \
                    if partial.exists() else 0
                kept.append(f"{noun} {i} kept after {epoch} of {epochs} epochs")
            raise KeyboardInterrupt(f"{what} {directory}: {done} of {count} {noun}s kept, {', '.join(kept)}; "
                                    f"run the same command again to resume") from None
        bar.update(len(indices))
        bar.set_postfix(test_acc=", ".join(f"{a:.3f}" for a in accs))
    bar.close()

"""MTT (Cazenavette et al., CVPR 2022): matching training trajectories.

Per iteration (method.md section 4):

- draw an expert of the buffer (:mod:`ddcmi.experts`) and a start epoch t in 0..max_start_epoch
  (the paper's "t <= T+"; the release's ``np.random.randint`` never draws the bound itself);
- the **student** starts from the expert's parameters after t epochs and takes ``syn_steps`` SGD
  steps on minibatches of the synthetic set (``batch_syn``, 0 = the whole set), DSA drawn
  independently per image, at the **learned step size** ``syn_lr`` (initialised ``lr_teacher``);
- loss = ||w_student - w*_{t+M}||^2 / ||w*_t - w*_{t+M}||^2 (M = ``expert_epochs``): the distance to
  the expert M epochs later, normalised by the expert's own displacement;
- one update of the pixels (SGD ``lr_img``, momentum 0.5) and of ``syn_lr`` (SGD ``lr_lr``, momentum
  0.5): ``syn_lr`` is method state (checkpointed), travels in the synthetic set (``learned_lr``) and
  is the evaluation's lr (``EvalConfig.learned_lr``).

Two ways to the same gradient (``options.gradient``):

- ``unrolled``: the release's, back-propagation through all unrolled steps (``create_graph``):
  memory grows with ``syn_steps``;
- ``recompute``: TESLA's idea (Cui et al., ICML 2023). The forward pass keeps only the parameter
  vectors w_0..w_N (no graph); the backward pass walks the steps in reverse with the adjoint
  a = dL/dw, recomputing one step's gradient at a time with its graph (the same batch, the same DSA
  draw):  dL/dX += -lr d(a . g_i)/dX,  dL/dlr += -(a . g_i),  a <- a - lr H_i a  (a Hessian-vector
  product). It is exact (the same gradient as ``unrolled``, within float rounding) and holds one
  step's activations at a time; only the N + 1 parameter vectors grow with ``syn_steps``.

ZCA (``options.experts.zca``): the student, the experts and the real initialisation work in
ZCA-whitened space; the pixels optimised are whitened; the synthetic set is stored unwhitened
(:meth:`synthetic`), with ``zca`` recorded so evaluation whitens it again; CMI sees the unwhitened
images (the proxies' space) through the differentiable inverse.

CMI: ``lambda x CMI`` of the whole un-augmented synthetic set once per iteration (one proxy).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ..augment import DSA
from ..errors import ConfigError
from ..experts import ExpertBuffer, ExpertConfig, parameter_layout
from ..models import create_model
from . import register
from .base import MatchingMethod

GRADIENTS = ("unrolled", "recompute")


@dataclass(frozen=True)
class MTTOptions:
    """MTT's own settings (``--set options.NAME=VALUE``); defaults: the author's CIFAR-10 IPC 10 row."""

    syn_steps: int = 30  # student steps per iteration
    expert_epochs: int = 2  # M: the target is the expert M epochs after the start
    max_start_epoch: int = 20  # the start epoch t is drawn from 0..max_start_epoch
    lr_lr: float = 1e-5  # SGD lr of the learned step size
    lr_teacher: float = 0.001  # the learned step size's initial value
    batch_syn: int = 0  # synthetic images per student step (0 = the whole set)
    gradient: str = "unrolled"  # "unrolled" (back-propagate through every step) or "recompute" (constant memory)
    experts: ExpertConfig | None = None  # the expert buffer (set by the profile for the dataset)

    def __post_init__(self):
        for name in ("syn_steps", "expert_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"options.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_start_epoch < 0 or self.batch_syn < 0:
            raise ConfigError("options.max_start_epoch and options.batch_syn must be >= 0")
        if self.lr_lr < 0 or self.lr_teacher <= 0:
            raise ConfigError(f"options.lr_lr must be >= 0 and options.lr_teacher > 0 (got {self.lr_lr}, {self.lr_teacher})")
        if self.gradient not in GRADIENTS:
            raise ConfigError(f"options.gradient must be one of {GRADIENTS}, got {self.gradient!r}")
        if self.experts is not None and self.experts.epochs < self.max_start_epoch + self.expert_epochs:
            raise ConfigError(f"the expert buffer has {self.experts.epochs} epochs but max_start_epoch + expert_epochs "
                              f"= {self.max_start_epoch + self.expert_epochs}; raise options.experts.epochs or lower them")


# The author's table (method.md section 4): (dataset, ipc) -> (syn_steps, expert_epochs, max_start_epoch,
# lr_img, lr_lr, lr_teacher, zca, batch_syn); 5000 iterations each.
PUBLISHED = {
    ("cifar10", 1): (50, 2, 2, 100.0, 1e-7, 0.01, True, 0),
    ("cifar10", 10): (30, 2, 20, 100.0, 1e-5, 0.001, True, 0),
    ("cifar10", 50): (30, 2, 40, 1000.0, 1e-5, 0.001, False, 0),
    ("cifar100", 1): (20, 3, 20, 1000.0, 1e-5, 0.01, True, 0),
    ("cifar100", 10): (20, 2, 20, 1000.0, 1e-5, 0.01, False, 0),
    ("cifar100", 50): (80, 2, 40, 1000.0, 1e-5, 0.01, True, 125),
    ("tinyimagenet", 1): (10, 2, 10, 10000.0, 1e-4, 0.01, False, 0),
    ("tinyimagenet", 10): (20, 2, 40, 10000.0, 1e-4, 0.01, False, 200),
    ("tinyimagenet", 50): (20, 2, 40, 10000.0, 1e-4, 0.01, False, 300),
}


def published(dataset: str, ipc: int) -> tuple[tuple, str]:
    """The author's row for dataset/IPC (the nearest published IPC; CIFAR-10's rows for datasets the
    table lacks) and a note saying which row it is."""
    ds = {"cifar10_jpeg": "cifar10"}.get(dataset, dataset)
    if not any(d == ds for d, _ in PUBLISHED):
        ds = "cifar10"
    near = min((i for d, i in PUBLISHED if d == ds), key=lambda i: (abs(i - ipc), i))
    return PUBLISHED[(ds, near)], f"{ds} IPC {near}"


def unflatten(flat: torch.Tensor, layout: list[tuple[str, tuple[int, ...]]]) -> dict[str, torch.Tensor]:
    """A flat parameter vector as named views (``functional_call``'s parameters); differentiable."""
    total = sum(math.prod(shape) for _, shape in layout)
    if total != flat.numel():
        raise ConfigError(f"a flat parameter vector of {flat.numel()} values does not fit a network of {total}")
    out, i = {}, 0
    for name, shape in layout:
        n = math.prod(shape)
        out[name] = flat[i:i + n].view(shape)
        i += n
    return out


def trajectory_loss(student: torch.Tensor, start: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||student - target||^2 / ||start - target||^2: MTT's matching loss (1 = no progress)."""
    return ((student - target) ** 2).sum() / ((start - target) ** 2).sum()


@register("mtt")
class MTTMatching(MatchingMethod):
    options = MTTOptions
    no_class_split = "the student trains on the whole synthetic set at once (one trajectory, not one per class)"
    # No lambda is published for MTT (method.md section 5): the cpu value is the gradient-scale rule
    # measured on mnist (benchmarks/calibrate_lambda.py --method mtt, docs/profiles.md); paper borrows it
    # until a GPU calibration at paper settings replaces it.
    cpu_lambda = 1.2
    cpu_lambda_note = ("cpu profile: set so lambda*|grad CMI| ~ |grad MTT| at init with the quarter-width "
                       "ResNet-18 proxies (docs/profiles.md)")

    @classmethod
    def cmi_weight(cls, profile: str, dataset: str, ipc: int) -> tuple[float, str]:
        if profile != "paper":
            return super().cmi_weight(profile, dataset, ipc)
        return cls.cpu_lambda, ("not published for MTT; the cpu profile's gradient-scale value, not calibrated "
                                "at paper settings (benchmarks/calibrate_lambda.py --method mtt --profile paper)")

    @classmethod
    def defaults(cls, profile: str, dataset: str, ipc: int) -> dict[str, Any]:
        from ..profiles import _net_for
        (steps, m, start, lr_img, lr_lr, lr_teacher, zca, batch), _ = published(dataset, ipc)
        net = _net_for(dataset)
        experts = ExpertConfig(dataset, arch=net, count=100, epochs=50, zca=zca)
        opts = MTTOptions(syn_steps=steps, expert_epochs=m, max_start_epoch=start, lr_lr=lr_lr,
                          lr_teacher=lr_teacher, batch_syn=batch, experts=experts)
        paper = {"iterations": 5000, "lr_img": lr_img, "momentum": 0.5, "options": opts}
        if profile == "paper":
            return {**paper, "checkpoint_every": 100}
        if profile == "cpu":  # docs/profiles.md: 4 experts x 6 epochs on 500 images per class, 10 student steps,
            # 200 iterations at IPC <= 2 and 100 above (a student step costs ~1.5 s at IPC 10 on 2 cores)
            start = min(start, 4)  # one buffer of 4 + M epochs serves every IPC
            e = dataclasses.replace(experts, count=4, epochs=4 + m, train_per_class=500)
            return {**paper, "iterations": 200 if ipc <= 2 else 100, "checkpoint_every": 10,
                    "options": dataclasses.replace(opts, syn_steps=min(steps, 10), max_start_epoch=start, experts=e)}
        # smoke: no ZCA (whitening a tiny, short evaluation mostly amplifies noise; tests turn it on)
        e = dataclasses.replace(experts, count=2, epochs=3, train_per_class=50, arch_kwargs={"width": 32}, zca=False)
        return {**paper, "iterations": 10, "checkpoint_every": 5,
                "options": dataclasses.replace(opts, syn_steps=3, expert_epochs=2, max_start_epoch=1, experts=e)}

    def __init__(self, config, dataset, sampler, device, classes=None):
        super().__init__(config, dataset, sampler, device, classes)
        opts = config.options if config.options is not None else MTTOptions()
        if not isinstance(opts, MTTOptions):
            raise ConfigError(f"mtt's options section must be MTTOptions, got {type(opts).__name__}")
        experts = opts.experts or ExpertConfig(config.dataset, arch=config.net, arch_kwargs=dict(config.net_kwargs))
        if experts.dataset != config.dataset:
            raise ConfigError(f"options.experts is for {experts.dataset!r}, the run for {config.dataset!r}")
        if experts.arch != config.net or dict(experts.arch_kwargs) != dict(config.net_kwargs):
            raise ConfigError(f"the student network ({config.net} {config.net_kwargs}) must be the experts' "
                              f"({experts.arch} {experts.arch_kwargs}): set options.experts.arch / arch_kwargs too")
        self.opts, self.experts_config = opts, experts
        self.net = create_model(config.net, dataset.channels, dataset.num_classes, dataset.image_size,
                                **config.net_kwargs).to(device)
        self.net.requires_grad_(False)
        self.layout = parameter_layout(self.net)
        self.dsa = DSA(config.dsa)
        self.syn_lr = torch.tensor(float(opts.lr_teacher), device=device, requires_grad=True)
        self.progress = True
        self._buffer: ExpertBuffer | None = None
        self.zca = None
        if experts.zca:
            from ..transforms import zca_for
            self.zca = zca_for(dataset)

    @classmethod
    def input_transform(cls, config, dataset):
        """The space the pixels live in: ZCA-whitened where the experts were trained on whitened data."""
        opts = config.options
        if isinstance(opts, MTTOptions) and opts.experts is not None and opts.experts.zca:
            from ..transforms import zca_for
            return zca_for(dataset).whiten
        return None

    @property
    def buffer(self) -> ExpertBuffer:
        """The expert buffer, built (or finished) on first use and then read lazily."""
        if self._buffer is None:
            self._buffer = ExpertBuffer.build(self.experts_config, self.dataset, self.device, progress=self.progress)
        return self._buffer

    # ------------------------------------------------------------------ parameterisation
    def initial(self, ipc: int, draws):
        self.buffer  # build the experts before the first iteration (and before any timing)
        return super().initial(ipc, draws)

    def synthetic(self, images, labels):
        """The set in the dataset's normalised space (unwhitened where the pixels are ZCA-whitened)."""
        return (images if self.zca is None else self.zca.unwhiten(images)), labels

    def artefact_fields(self) -> dict:
        return {"learned_lr": float(self.syn_lr.detach()),
                "zca": None if self.zca is None else {"eps": self.zca.eps, "source": self.zca.source}}

    # ------------------------------------------------------------------ one iteration
    def iteration(self, images, labels, draws, update) -> list[dict]:
        g = draws("expert")
        index = int(torch.randint(len(self.buffer), (1,), generator=g))
        t = int(torch.randint(self.opts.max_start_epoch + 1, (1,), generator=g))
        start, target = self.buffer.epochs(index, [t, t + self.opts.expert_epochs], self.device)
        terms = self.loss_and_backward(images, labels, start, target, draws)
        terms.update(expert=index, start_epoch=t)
        cmi = {} if self.zca is None else dict(zip(("cmi_images", "cmi_labels"), self.synthetic(images, labels)))
        return [update(terms, **cmi)]

    def loss_and_backward(self, images, labels, start, target, draws) -> dict:
        """MTT's loss; its gradient added to ``images.grad`` and ``syn_lr.grad`` by the chosen mode."""
        fn = self._unrolled if self.opts.gradient == "unrolled" else self._recompute
        loss = fn(images, labels, start, target, draws)
        return {"match": loss, "syn_lr": float(self.syn_lr.detach())}

    def _batches(self, n: int, draws) -> list[torch.Tensor]:
        """The student's minibatch indices for each step: chunks of random permutations of the set."""
        size = self.opts.batch_syn or n
        g, out, perm = draws("student_batches"), [], torch.empty(0, dtype=torch.long)
        while len(out) < self.opts.syn_steps:
            if perm.numel() == 0:
                perm = torch.randperm(n, generator=g)
            out.append(perm[:size].to(self.device))
            perm = perm[size:]
        return out

    def _step_gradient(self, w, images, labels, idx, generator, create_graph: bool):
        x = self.dsa(images[idx], generator, siamese=False) if self.dsa.enabled else images[idx]
        ce = F.cross_entropy(functional_call(self.net, unflatten(w, self.layout), (x,)), labels[idx])
        return torch.autograd.grad(ce, w, create_graph=create_graph)[0]

    def _unrolled(self, images, labels, start, target, draws) -> float:
        batches = self._batches(labels.numel(), draws)
        w0 = start.detach().requires_grad_(True)
        w = w0
        for i, idx in enumerate(batches):
            w = w - self.syn_lr * self._step_gradient(w, images, labels, idx, draws("student", step=i), True)
        loss = trajectory_loss(w, start, target)
        loss.backward(inputs=[images, self.syn_lr])
        return float(loss.detach())

    def _recompute(self, images, labels, start, target, draws) -> float:
        batches = self._batches(labels.numel(), draws)
        lr = self.syn_lr.detach()
        ws = [start.detach()]
        for i, idx in enumerate(batches):  # forward: parameters only, no graph over the pixels
            w = ws[-1].clone().requires_grad_(True)
            ws.append((w - lr * self._step_gradient(w, images.detach(), labels, idx, draws("student", step=i),
                                                     False)).detach())
        denom = ((start - target) ** 2).sum()
        loss = ((ws[-1] - target) ** 2).sum() / denom
        a = 2 * (ws[-1] - target) / denom  # dL/dw_N
        grad_x, grad_lr = torch.zeros_like(images), torch.zeros((), device=images.device)
        for i in reversed(range(len(batches))):  # backward: one step's graph at a time
            w = ws[i].clone().requires_grad_(True)
            x = images.detach().requires_grad_(True)
            g = self._step_gradient(w, x, labels, batches[i], draws("student", step=i), True)
            s = (a * g).sum()
            dx, dw = torch.autograd.grad(s, [x, w])
            grad_x -= lr * dx
            grad_lr -= s.detach()
            a = a - lr * dw
        _accumulate(images, grad_x)
        _accumulate(self.syn_lr, grad_lr)
        return float(loss)

    # ------------------------------------------------------------------ state across iterations
    def state_dict(self) -> dict:
        return {"syn_lr": float(self.syn_lr.detach())}

    def load_state_dict(self, state: dict) -> None:
        if state:
            with torch.no_grad():
                self.syn_lr.fill_(float(state["syn_lr"]))

    def param_groups(self) -> list[dict]:
        return [{"params": [self.syn_lr], "lr": self.opts.lr_lr, "momentum": 0.5}]


def _accumulate(t: torch.Tensor, grad: torch.Tensor) -> None:
    t.grad = grad.clone() if t.grad is None else t.grad + grad

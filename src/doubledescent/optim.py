"""SGD and Adam over stacked parameters, computed by the fused kernels torch.optim uses.

`torch.optim.Optimizer` imports `torch._dynamo` when it is built (about 1 s of every
training job: a few percent of the default sweep) and spends ~60 us of Python per step (a
tenth of a small group's step). These two call the same ATen kernels as
`torch.optim.SGD/Adam(fused=True)` directly, so their updates are bit-identical to those;
tests/test_optim.py checks them against torch.optim. Every element is updated on its own, so
each run's slice of a stacked tensor keeps its own momentum and moments.
"""

from __future__ import annotations

import torch

from doubledescent.specs import TrainingSettings


class SGD:
    """torch.optim.SGD(lr, momentum) without dampening, Nesterov or weight decay (the
    trainer applies L2 itself, per run)."""

    def __init__(self, params, lr: float, momentum: float = 0.0):
        self.params = list(params)
        self.lr, self.momentum = lr, momentum
        # Filled with the first gradient on the first step, as torch.optim does.
        self.momentum_buffers = [torch.empty_like(p) for p in self.params] if momentum else []
        self.first_step = True

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        torch._fused_sgd_(
            self.params,
            [p.grad for p in self.params],
            self.momentum_buffers,
            weight_decay=0.0,
            momentum=self.momentum,
            lr=self.lr,
            dampening=0.0,
            nesterov=False,
            maximize=False,
            is_first_step=self.first_step,
        )
        self.first_step = False

    def state_dict(self) -> dict:
        return {"momentum_buffers": self.momentum_buffers, "first_step": self.first_step}

    def load_state_dict(self, state: dict) -> None:
        for buf, saved in zip(self.momentum_buffers, state["momentum_buffers"], strict=True):
            buf.copy_(saved)
        self.first_step = state["first_step"]


class Adam:
    """torch.optim.Adam(lr, betas, eps) without weight decay or amsgrad."""

    def __init__(self, params, lr: float, betas: tuple[float, float], eps: float):
        self.params = list(params)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.exp_avgs = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in self.params]
        # One step count per tensor, float32 on its device, as the fused kernel takes them.
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        torch._foreach_add_(self.steps, 1)
        torch._fused_adam_(
            self.params,
            [p.grad for p in self.params],
            self.exp_avgs,
            self.exp_avg_sqs,
            [],
            self.steps,
            amsgrad=False,
            lr=self.lr,
            beta1=self.betas[0],
            beta2=self.betas[1],
            weight_decay=0.0,
            eps=self.eps,
            maximize=False,
        )

    def state_dict(self) -> dict:
        return {"exp_avgs": self.exp_avgs, "exp_avg_sqs": self.exp_avg_sqs, "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        for name in ("exp_avgs", "exp_avg_sqs", "steps"):
            for t, saved in zip(getattr(self, name), state[name], strict=True):
                t.copy_(saved)


def make(params, training: TrainingSettings) -> SGD | Adam:
    """The optimizer that `training.optimizer` names, over the stacked parameters."""
    name, lr = training.optimizer, training.lr
    if name == "sgd":
        return SGD(params, lr, training.momentum)
    if name == "adam":
        return Adam(params, lr, training.adam_betas, training.adam_eps)
    raise ValueError(f"unknown optimizer {name!r}")

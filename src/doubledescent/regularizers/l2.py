"""L2 weight decay, per run: `weight_decay` (wd), entering as `training.l2_mode` says."""

from __future__ import annotations

from doubledescent.regularizers.base import Context, Hooks, Param, Regularizer, one_slice

L2_MODES = {
    "coupled": "added to the gradient",
    "penalty": "as a penalty on the loss",
    "decoupled": "decoupled from the optimizer (AdamW)",
}
# The gradient that coupled and penalty L2 add, in units of wd * W: d(wd ||W||^2)/dW = 2 wd W.
L2_GRADIENT = {"coupled": 1.0, "penalty": 2.0}


class L2(Hooks):
    def __init__(self, runs: list, context: Context):
        import torch

        model, tr = context.model, context.training
        self.mode = tr.l2_mode
        decayed = list(model.parameters()) if tr.decay == "all" else model.decayed_parameters()
        wd = [r.weight_decay for r in runs]
        weight_decay = torch.tensor(wd, dtype=context.dtype, device=context.device)
        # The decaying runs (runs along dim 0 of every parameter) where they are one slice;
        # else (a pack's runs) every run, the others at 0, in one op per parameter. Views
        # and coefficients made once.
        span = one_slice(wd) or slice(None)
        self.slices = [
            (p, span, p[span], weight_decay[span].view(-1, *[1] * (p.dim() - 1))) for p in decayed
        ]

    def update(self, lr: float) -> None:
        """Each decaying run's weight decay on its slice."""
        import torch

        with torch.no_grad():
            for p, span, mine, wd in self.slices:
                if self.mode == "decoupled":
                    # As torch.optim.AdamW: shrink the weights themselves, not the moments.
                    mine.mul_(1 - lr * wd)
                else:
                    p.grad[span].addcmul_(mine, wd, value=L2_GRADIENT[self.mode])


def setup(runs: list, context: Context) -> L2 | None:
    """None where no run decays: the group skips the decay kernels."""
    return L2(runs, context) if any(r.weight_decay > 0 for r in runs) else None


def describe(values: dict, training: dict) -> str:
    if not values["weight_decay"]:
        return ""
    target = "all parameters" if training["decay"] == "all" else "the weights"
    mode = L2_MODES[training["l2_mode"]]
    return f"weight decay {values['weight_decay']:g} on {target}, {mode}"


WEIGHT_DECAY = Param(
    "weight_decay",
    0.0,
    {"type": "number", "minimum": 0},
    "L2 coefficient; `training.l2_mode` says how it enters the update (coupled as in "
    "torch.optim.SGD by default) and `training.decay` which parameters it shrinks (the "
    "weights by default: not biases, not batchnorm scales and shifts). A list is a "
    "grid: one variant per value, named `<variant>@<value>`, and the "
    "`optimal_regularization` figure shows its lower envelope (Nakkiran et al. 2020).",
    grid=True,
    frozen=True,
)
REGULARIZER = Regularizer("l2", (WEIGHT_DECAY,), setup=setup, describe=describe)

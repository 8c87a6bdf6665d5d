"""Label smoothing, per run: `label_smoothing` (e), cross-entropy against smoothed targets.

A run trains on the targets (1 - e) * one-hot + e / classes, as torch.nn.functional
.cross_entropy(..., label_smoothing=e) does (Szegedy et al. 2016, Sec. 7): its per-sample
loss is (1 - e) * the cross-entropy + e * the mean over classes of -log p. Only the training
objective changes: reported losses stay the plain cross-entropy, so that runs of different
e compare on one scale. Squared loss (Belkin et al.'s MSE against one-hot targets) has no
smoothing here: a config asking for both is refused.
"""

from __future__ import annotations

from doubledescent.errors import ConfigError
from doubledescent.regularizers.base import Context, Hooks, Param, Regularizer


class LabelSmoothing(Hooks):
    def __init__(self, runs: list, context: Context):
        import torch

        e = [r.label_smoothing for r in runs]
        self.e = torch.tensor(e, dtype=context.dtype, device=context.device).view(-1, 1)

    def loss(self, losses, logits, y):
        import torch

        # Classes as dim 1, as train.sample_losses takes them (faster on the CPU).
        uniform = -torch.log_softmax(logits.transpose(1, 2), dim=1).mean(1)
        return torch.lerp(losses, uniform, self.e)


def setup(runs: list, context: Context) -> LabelSmoothing | None:
    return LabelSmoothing(runs, context) if any(r.label_smoothing for r in runs) else None


def check(where: str, exp: dict, values: dict) -> None:
    e = values.get("label_smoothing", 0.0)
    if any(e if isinstance(e, list) else [e]) and exp["training"]["loss"] != "cross_entropy":
        raise ConfigError(
            f"{where}.label_smoothing: smooths cross-entropy targets, and training.loss is "
            f"{exp['training']['loss']}"
        )


SMOOTHING = Param(
    "label_smoothing",
    0.0,
    {"type": "number", "minimum": 0, "maximum": 1},
    "Label smoothing e: cross-entropy against the targets (1 - e) * one-hot + "
    "e / classes, as torch's cross_entropy(label_smoothing=e); reported losses stay "
    "the plain cross-entropy. Needs `training.loss: cross_entropy`. A list is a grid, "
    "one variant per value (`<variant>@<value>`).",
    grid=True,
    caption="label smoothing {:g}",
)
REGULARIZER = Regularizer("label_smoothing", (SMOOTHING,), setup=setup, check=check)

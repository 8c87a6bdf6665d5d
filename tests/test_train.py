"""The vectorized group trainer against an independent computation: one nn.Module per run."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from doubledescent import config, resources, streams, train
from doubledescent.config import Run
from doubledescent.specs import TrainingSettings
from tests.conftest import SCHEMA

VARIANTS = {
    "none": {},
    "l2": {"weight_decay": 0.05},
    "dropout": {"dropout": 0.3},
    "l2_dropout": {"weight_decay": 0.01, "dropout": 0.2},
    "batchnorm": {"batchnorm": True},
    "bn_all": {"batchnorm": True, "dropout": 0.25, "weight_decay": 0.02},
}
TRAINING = {
    "optimizer": "sgd",
    "lr": 0.05,
    "momentum": 0.9,
    "batch_size": 64,
    "epochs": 2,
    "loss": "cross_entropy",
    "eval_epochs": [1, 2],
}


def experiment(regs: dict, widths=(12,), seeds=(0, 1), epochs=2, training=None, model=None) -> dict:
    """A validated experiment, so every key the trainer reads has the schema's default."""
    exp = {
        "dataset": {"name": "mnist1d", "label_noise": 0.2},
        "model": {"name": "mlp", "depth": 2, **(model or {})},
        "widths": list(widths),
        "regularizers": regs,
        "seeds": list(seeds),
        "training": {
            **TRAINING,
            "epochs": epochs,
            "eval_epochs": list(range(1, epochs + 1)),
            **(training or {}),
        },
    }
    return config.validate({"experiments": {"t": exp}}, SCHEMA)["experiments"]["t"]


class Reference(nn.Module):
    """The tutorial MLP: nn.Linear, nn.BatchNorm1d before or after ReLU, dropout from a mask."""

    def __init__(self, widths, batchnorm, norm_after=False):
        super().__init__()
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.norms = nn.ModuleList(
            nn.BatchNorm1d(w) if batchnorm else nn.Identity() for w in widths[1:-1]
        )
        self.norm_after = norm_after

    def forward(self, x, masks):
        for lin, norm, mask in zip(self.linears, self.norms, masks):
            x = norm(torch.relu(lin(x))) if self.norm_after else torch.relu(norm(lin(x)))
            x = x if mask is None else x * mask
        return self.linears[-1](x)


def reference_from(group: train.Group, i: int) -> Reference:
    """Run i of a stacked model, copied into a separate module (weights transposed)."""
    m = group.model
    widths = [m.linears[0].weight.shape[1]] + [lin.weight.shape[2] for lin in m.linears]
    ref = Reference(widths, group.runs[i].batchnorm, m.norm_after).double()
    with torch.no_grad():
        for lin, stacked in zip(ref.linears, m.linears):
            lin.weight.copy_(stacked.weight[i].T)
            lin.bias.copy_(stacked.bias[i, 0])
    return ref


def reference_decayed(ref: nn.Module, tr: TrainingSettings) -> list[nn.Parameter]:
    """What L2 shrinks in a plain module: every parameter, or the linear and conv weights."""
    if tr.decay == "all":
        return list(ref.parameters())
    return [m.weight for m in ref.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]


def reference_optimizer(ref: nn.Module, run: Run, tr: TrainingSettings) -> torch.optim.Optimizer:
    """torch.optim's own optimizer for one run, with its own weight decay where it has one."""
    decay = reference_decayed(ref, tr)
    rest = [p for p in ref.parameters() if all(p is not d for d in decay)]
    wd = 0.0 if tr.l2_mode == "penalty" else run.weight_decay  # penalty: in the loss
    groups = [
        g
        for g in ({"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0})
        if g["params"]
    ]
    if tr.optimizer == "sgd":
        assert tr.l2_mode != "decoupled", "torch.optim has no decoupled SGD to compare with"
        return torch.optim.SGD(groups, lr=tr.lr, momentum=tr.momentum)
    adam = torch.optim.AdamW if tr.l2_mode == "decoupled" else torch.optim.Adam
    return adam(groups, lr=tr.lr, betas=tr.adam_betas, eps=tr.adam_eps)


def reference_loss(ref: nn.Module, run: Run, out, y, tr: TrainingSettings):
    """The run's minibatch loss, written out independently of the trainer's."""
    if tr.loss == "mse":
        loss = ((out - torch.eye(out.shape[1], dtype=out.dtype)[y]) ** 2).sum(1).mean()
    else:
        loss = F.cross_entropy(out, y)
    if tr.l2_mode == "penalty":
        loss = loss + run.weight_decay * sum((p**2).sum() for p in reference_decayed(ref, tr))
    return loss


class ReferenceDropout:
    """A run's inverted dropout as the trainer's CPU stream defines it, written independently
    of it: PCG64 on the run's `dropout` SeedSequence read as 32-bit draws (each word's low
    half, then its high half) in order across masks, a unit kept where its draw is at least
    round(rate * 2**32)."""

    def __init__(self, run: Run):
        seeds = np.random.SeedSequence([run.seed, streams.STREAMS["dropout"]])
        self.bits, self.rate = np.random.PCG64(seeds), run.dropout
        self.draws = np.empty(0, np.uint64)

    def mask(self, *shape) -> torch.Tensor:
        n = math.prod(shape)
        if len(self.draws) < n:
            words = self.bits.random_raw(-(-(n - len(self.draws)) // 2))
            halves = np.stack([words & 0xFFFFFFFF, words >> 32], axis=1).reshape(-1)
            self.draws = np.concatenate([self.draws, halves])
        draws, self.draws = self.draws[:n], self.draws[n:]
        keep = torch.from_numpy(draws >= round(self.rate * 2**32)).reshape(shape)
        return keep.double() / (1 - self.rate)

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return h * self.mask(*h.shape) if self.rate > 0 else h


def train_reference(ref: Reference, run: Run, x, y, tr: TrainingSettings) -> None:
    """Plain per-run torch.optim training with the same random streams the group trainer uses."""
    opt = reference_optimizer(ref, run, tr)
    k = tr.schedule_steps
    factor = (
        (lambda t: 1 / math.sqrt(1 + t // k)) if tr.schedule == "inverse_sqrt" else (lambda t: 1.0)
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    order, drop = train.generator(run.seed, "order"), ReferenceDropout(run)
    ref.train()
    for _ in range(tr.epochs):
        perm = torch.randperm(len(y), generator=order)
        for s in range(0, len(y), tr.batch_size):
            idx = perm[s : s + tr.batch_size]
            masks = [None] * len(ref.norms)
            if run.dropout > 0:
                masks = [drop.mask(len(idx), lin.out_features) for lin in ref.linears[:-1]]
            opt.zero_grad()
            reference_loss(ref, run, ref(x[idx], masks), y[idx], tr).backward()
            opt.step()
            sched.step()


def stacked_group(exp, small_data, gid):
    runs = config.groups(exp)[gid]
    spec = config.group_spec("t", exp, gid)
    group = train.make_group(spec, runs, (40,), 10, "cpu", torch.float64)
    data = train.Tensors.from_arrays(small_data, "cpu", torch.float64)
    return group, data, spec


def assert_equals_separate_models(exp, small_data, gid):
    """Train a group and each of its runs separately from the same start; compare parameters."""
    group, data, spec = stacked_group(exp, small_data, gid)
    batchnorm = group.runs[0].batchnorm
    refs = [reference_from(group, i) for i in range(len(group.runs))]
    for _ in range(spec.training.epochs):
        train.train_epoch(group, data, spec.training.batch_size)
    for i, (ref, run) in enumerate(zip(refs, group.runs)):
        train_reference(ref, run, data.x_train, data.y_train, spec.training)
        for lin, stacked in zip(ref.linears, group.model.linears):
            torch.testing.assert_close(stacked.weight[i].T, lin.weight, rtol=1e-9, atol=1e-11)
            torch.testing.assert_close(stacked.bias[i, 0], lin.bias, rtol=1e-9, atol=1e-11)
        for norm, stacked in zip(ref.norms, group.model.norms):
            if batchnorm:
                torch.testing.assert_close(stacked.running_var[i, 0], norm.running_var)
                torch.testing.assert_close(stacked.weight[i, 0], norm.weight)


@pytest.mark.parametrize("batchnorm", [False, True])
def test_vectorized_training_equals_separate_models(small_data, batchnorm):
    regs = {k: v for k, v in VARIANTS.items() if v.get("batchnorm", False) == batchnorm}
    gid = f"width~12_norm~{'batch' if batchnorm else 'none'}"
    assert_equals_separate_models(experiment(regs), small_data, gid)


def test_first_step_gradients_equal_separate_models(small_data):
    exp = experiment(
        {"none": {}, "l2": {"weight_decay": 0.1}, "bn": {"batchnorm": True}}, seeds=(3,)
    )
    for gid in config.groups(exp):
        group, data, _ = stacked_group(exp, small_data, gid)
        refs = [reference_from(group, i) for i in range(len(group.runs))]
        idx = torch.arange(32).expand(len(refs), 32)
        train.train_step(group, data.x_train[idx], data.y_train[idx])
        for i, (ref, run) in enumerate(zip(refs, group.runs)):
            ref.train()
            F.cross_entropy(ref(data.x_train[:32], [None, None]), data.y_train[:32]).backward()
            for lin, stacked in zip(ref.linears, group.model.linears):
                w, b = stacked.weight, stacked.bias
                # The stacked gradient already holds the coupled decay term wd * W.
                expected = lin.weight.grad + run.weight_decay * lin.weight.detach()
                torch.testing.assert_close(w.grad[i].T, expected, rtol=1e-10, atol=1e-12)
                torch.testing.assert_close(b.grad[i, 0], lin.bias.grad, rtol=1e-10, atol=1e-12)


def test_weight_decay_shrinks_weights(small_data):
    exp = experiment({"none": {}, "l2": {"weight_decay": 0.5}}, seeds=(0,), epochs=3)
    group, data, spec = stacked_group(exp, small_data, "width~12_norm~none")
    for _ in range(3):
        train.train_epoch(group, data, 64)
    norms = [
        float(sum(w[i].detach().norm() ** 2 for w in group.model.decayed_parameters()))
        for i in range(2)
    ]
    assert norms[1] < 0.7 * norms[0]


def test_dropout_active_in_training_and_off_in_evaluation(small_data):
    exp = experiment({"dropout": {"dropout": 0.5}}, seeds=(0,))
    group, data, _ = stacked_group(exp, small_data, "width~12_norm~none")
    x = data.x_train[:16].expand(1, 16, 40)
    mask = group.mask
    assert 0.3 < float((mask((16, 12)) == 0).double().mean()) < 0.7
    group.model.train()
    assert not torch.allclose(group.model(x, mask), group.model(x, mask))
    # Evaluation takes no masks and is deterministic.
    torch.testing.assert_close(
        train.predict(group.model, data.x_test), train.predict(group.model, data.x_test)
    )
    assert experiment_group_without_dropout(small_data).mask is None


def test_evaluation_in_chunks_gives_the_logits_of_one_pass(small_data):
    # Each row is its own product, so the rows per forward pass (fewer for a wide MLP on the
    # CPU: resources.eval_rows) change no logit, however a set splits into chunks.
    regs = {"none": {}, "l2": {"weight_decay": 5e-4}, "dropout": {"dropout": 0.1}}
    exp = experiment(regs, widths=(300,), seeds=(0, 1, 2))
    runs = config.groups(exp)["width~300_norm~none"]
    spec = config.group_spec("t", exp, "width~300_norm~none")
    group = train.make_group(spec, runs, (40,), 10, "cpu", torch.float32)
    assert group.eval_rows == 128  # the default sweep's widest group's
    data = train.Tensors.from_arrays(small_data, "cpu")
    x = torch.cat([data.x_train, data.x_test])
    one_pass = train.predict(group.model, x, len(x))
    for rows in (group.eval_rows, 96, resources.EVAL_CHUNK):
        assert len(x) % rows  # a short last chunk too
        assert torch.equal(train.predict(group.model, x, rows), one_pass), rows


def experiment_group_without_dropout(small_data):
    return stacked_group(experiment({"none": {}}), small_data, "width~12_norm~none")[0]


def test_run_results_do_not_depend_on_group_composition(small_data):
    alone = train.train_group(
        config.group_spec("t", experiment({"none": {}}, seeds=(1,)), "width~12_norm~none"),
        small_data,
        device="cpu",
        log=lambda s: None,
        dtype=torch.float64,
    )
    together = train.train_group(
        config.group_spec(
            "t",
            experiment(
                {"l2": {"weight_decay": 0.1}, "none": {}, "dropout": {"dropout": 0.5}}, seeds=(0, 1)
            ),
            "width~12_norm~none",
        ),
        small_data,
        device="cpu",
        log=lambda s: None,
        dtype=torch.float64,
    )
    mine = together[together.run_id == alone.run_id.iloc[0]].reset_index(drop=True)
    cols = ["epoch", "train_loss", "test_loss", "test_error"]
    pd.testing.assert_frame_equal(alone[cols], mine[cols], rtol=1e-9)


def test_train_group_is_deterministic_and_tidy(small_data):
    spec = config.group_spec("t", experiment(VARIANTS), "width~12_norm~none")
    a = train.train_group(spec, small_data, device="cpu", log=lambda s: None)
    b = train.train_group(spec, small_data, device="cpu", log=lambda s: None)
    metrics = ["train_loss", "train_error", "train_error_clean", "test_loss", "test_error"]
    pd.testing.assert_frame_equal(a[metrics], b[metrics])
    assert len(a) == 4 * 2 * 2  # variants without batchnorm x seeds x eval epochs
    assert a.run_id.nunique() == 8
    errors = a[["train_error", "train_error_clean", "test_error", "noisy_fit"]].to_numpy()
    assert np.all((errors >= 0) & (errors <= 1))
    assert (a.n_params == 12 * 12 + 52 * 12 + 10).all()


def test_divergence_is_recorded_not_raised(small_data):
    exp = experiment({"none": {}}, seeds=(0, 1))
    exp["training"]["lr"] = 1e6  # explodes within the first epoch
    spec = config.group_spec("t", exp, "width~12_norm~none")
    table = train.train_group(spec, small_data, device="cpu", log=lambda s: None)
    assert table.diverged.all()
    assert len(table) == 4

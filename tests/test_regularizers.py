"""The regularizer seam (doubledescent.regularizers): label smoothing against torch's
cross_entropy(label_smoothing=...) run by run, its config and pipeline, and a toy
regularizer registered here that runs through config and training with no other file."""

import hashlib
import subprocess
import sys

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from doubledescent import captions, config, regularizers, results, train
from tests import test_train
from tests.conftest import REPO, SCHEMA
from tests.test_train import assert_equals_separate_models, experiment, stacked_group

SMOOTHING = {
    "plain": {},
    "ls": {"label_smoothing": [0.05, 0.3]},
    "ls_l2_dropout": {"label_smoothing": 0.2, "weight_decay": 0.05, "dropout": 0.2},
    "ls_bn": {"label_smoothing": 0.1, "batchnorm": True},
}


def smoothed_reference_loss(ref, run, out, y, tr):
    """A separate run's loss: torch's own label smoothing (coupled L2 is in its optimizer)."""
    assert tr.loss == "cross_entropy" and tr.l2_mode == "coupled"
    return F.cross_entropy(out, y, label_smoothing=run.label_smoothing)


def test_a_grid_expands_into_variants_named_by_value():
    exp = experiment(SMOOTHING)
    assert list(config.variants(exp)) == ["plain", "ls@0.05", "ls@0.3", "ls_l2_dropout", "ls_bn"]
    assert [r.label_smoothing for r in config.runs(exp)][:4] == [0.0, 0.0, 0.05, 0.05]
    both = experiment({"g": {"weight_decay": [0.0, 0.1], "label_smoothing": [0.1, 0.2]}})
    assert list(config.variants(both)) == [
        f"g@weight_decay~{w}_label_smoothing~{e}" for w in (0, 0.1) for e in (0.1, 0.2)
    ]
    assert {config.family(name) for name in config.variants(both)} == {"g"}


def test_smoothing_is_in_a_spec_only_where_a_run_smooths():
    exp = experiment(SMOOTHING)
    runs = config.plain_spec(config.group_spec("t", exp, "width~12_norm~none"))["runs"]
    smoothing = {r["regularizer"]: r.get("label_smoothing") for r in runs}
    assert smoothing == {"plain": None, "ls@0.05": 0.05, "ls@0.3": 0.3, "ls_l2_dropout": 0.2}
    # A spec's run is the run again: an absent parameter reads as its default.
    read = {r["regularizer"]: config.Run(**r).label_smoothing for r in runs}
    assert read == {**smoothing, "plain": 0.0}


def test_smoothing_with_squared_loss_is_a_one_line_config_error():
    with pytest.raises(config.ConfigError) as e:
        experiment({"ls": {"label_smoothing": [0.0, 0.1]}}, training={"loss": "mse"})
    assert str(e.value) == (
        "config.experiments.t.regularizers.ls.label_smoothing: smooths cross-entropy "
        "targets, and training.loss is mse"
    )
    experiment({"ls": {"label_smoothing": 0.0}}, training={"loss": "mse"})  # off: allowed


@pytest.mark.parametrize("value", [-0.1, 1.5, [0.1, 0.1]])
def test_bad_smoothing_values_are_refused(value):
    with pytest.raises(config.ConfigError, match=r"regularizers\.ls\.label_smoothing"):
        experiment({"ls": {"label_smoothing": value}})


def test_each_runs_objective_is_torchs_smoothed_cross_entropy(small_data):
    """A stacked group of runs of different smoothing: each run's training loss and
    gradients are those of torch's cross_entropy(label_smoothing=e) on a separate module."""
    exp = experiment({"plain": {}, "ls": {"label_smoothing": [0.05, 0.3, 1.0]}}, seeds=(2,))
    group, data, _ = stacked_group(exp, small_data, "width~12_norm~none")
    refs = [test_train.reference_from(group, i) for i in range(len(group.runs))]
    idx = torch.arange(48).expand(len(refs), 48)
    xb, yb = data.x_train[idx], data.y_train[idx]
    logits = group.model(xb)
    losses = train.sample_losses(logits, yb, "cross_entropy")
    for hook in group.hooks:
        losses = hook.loss(losses, logits, yb)
    train.train_step(group, xb, yb)
    for i, (ref, run) in enumerate(zip(refs, group.runs)):
        ref.train()
        loss = F.cross_entropy(ref(xb[i], [None, None]), yb[i], label_smoothing=run.label_smoothing)
        torch.testing.assert_close(losses[i].mean(), loss, rtol=1e-12, atol=1e-14)
        loss.backward()
        for lin, stacked in zip(ref.linears, group.model.linears):
            grad = stacked.weight.grad[i].T
            torch.testing.assert_close(grad, lin.weight.grad, rtol=1e-10, atol=1e-12)
    assert [r.label_smoothing for r in group.runs] == [0.0, 0.05, 0.3, 1.0]


@pytest.mark.parametrize("gid", ["width~6_norm~none", "width~6_norm~batch"])
def test_smoothed_training_equals_separate_models(small_data, monkeypatch, gid):
    monkeypatch.setattr(test_train, "reference_loss", smoothed_reference_loss)
    assert_equals_separate_models(experiment(SMOOTHING, widths=(6,), seeds=(0,)), small_data, gid)


def test_reported_losses_stay_plain_cross_entropy(small_data):
    """Smoothing changes the objective, not the scale that tables and figures report."""
    exp = experiment({"ls": {"label_smoothing": 0.3}}, seeds=(0,), epochs=1)
    group, data, _ = stacked_group(exp, small_data, "width~12_norm~none")
    metrics = train.evaluate(group.model, data, "cross_entropy")
    logits = train.predict(group.model, data.x_test)[0]
    torch.testing.assert_close(metrics["test_loss"][0], F.cross_entropy(logits, data.y_test))


def test_groups_trained_before_a_parameter_existed_collect_with_its_default(tmp_path):
    row = {**{c: 0 for c in results.KEY_COLUMNS}, "regularizer": "none", "diverged": False}
    pd.DataFrame([{**row, "run_id": "old"}]).to_parquet(tmp_path / "old.parquet")
    pd.DataFrame([{**row, "run_id": "new", "label_smoothing": 0.1}]).to_parquet(
        tmp_path / "new.parquet"
    )
    df = results.collect([tmp_path / "old.parquet", tmp_path / "new.parquet"])
    assert dict(zip(df.run_id, df.label_smoothing)) == {"old": 0.0, "new": 0.1}


class LogitPenalty(regularizers.Hooks):
    """A toy: c * the mean squared logit added to each sample's loss."""

    def __init__(self, runs, context):
        c = [r.logit_penalty for r in runs]
        self.c = torch.tensor(c, dtype=context.dtype, device=context.device).view(-1, 1)

    def loss(self, losses, logits, y):
        return losses + self.c * logits.square().mean(-1)


TOY = regularizers.Regularizer(
    name="logit_penalty",
    params=(
        regularizers.Param(
            "logit_penalty",
            0.0,
            {"type": "number", "minimum": 0},
            "A toy.",
            grid=True,
            caption="logit penalty {:g}",
        ),
    ),
    setup=lambda runs, ctx: LogitPenalty(runs, ctx) if any(r.logit_penalty for r in runs) else None,
)


def default_spec_hashes() -> list[str]:
    experiments = config.load(REPO / "config.yaml", SCHEMA)["experiments"]
    return [
        hashlib.sha256(config.rerun_key(config.group_spec(n, e, g)).encode()).hexdigest()
        for n, e in experiments.items()
        for g in config.groups(e)
    ]


def test_a_registered_regularizer_needs_no_other_file(small_data, monkeypatch):
    before = default_spec_hashes()
    monkeypatch.setattr(regularizers, "REGISTRY", [*regularizers.REGISTRY, TOY])
    # Config: its schema entry, grid and rerun keys; the default config's specs unchanged.
    assert default_spec_hashes() == before
    exp = experiment({"none": {}, "toy": {"logit_penalty": [0.0, 0.5]}}, seeds=(0,))
    runs = config.plain_spec(config.group_spec("t", exp, "width~12_norm~none"))["runs"]
    assert [r.get("logit_penalty") for r in runs] == [None, None, 0.5]
    assert "- ``toy@0.5``: logit penalty 0.5" in captions.settings(exp)
    with pytest.raises(config.ConfigError, match="toy.logit_penalty: -1 is less than"):
        experiment({"toy": {"logit_penalty": -1}})
    # Training: the stacked runs equal separate modules trained on the penalized loss.
    plain = test_train.reference_loss

    def penalized(ref, run, out, y, tr):
        return plain(ref, run, out, y, tr) + run.logit_penalty * out.square().mean()

    monkeypatch.setattr(test_train, "reference_loss", penalized)
    assert_equals_separate_models(exp, small_data, "width~12_norm~none")
    table = train.train_group(
        config.group_spec("t", exp, "width~12_norm~none"), small_data, "cpu", log=lambda s: None
    )
    assert sorted(table.logit_penalty.unique()) == [0.0, 0.5]


def test_the_registry_is_torch_free():
    """config and Snakemake read it while building the DAG; torch takes seconds to import."""
    code = "import sys, doubledescent.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "values, expected",
    [
        ([0, 0.1, 0.1, 0, 0.2], [slice(1, 3), slice(4, 5)]),
        ([0.5, 0.5, 0.5], [slice(0, 3)]),
        ([0, 0], []),
        ([], []),
    ],
)
def test_spans_are_the_slices_of_consecutive_runs_where_a_parameter_is_on(values, expected):
    assert regularizers.base.spans(values) == expected

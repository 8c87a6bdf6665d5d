"""Optimizers, L2 modes, learning-rate schedules, losses and batchnorm placement, each against
torch's own optimizers and modules on separate runs (float64, a few steps, tiny widths)."""

import dataclasses
import math

import pytest
import torch

from doubledescent import checkpoint, config, train
from tests.conftest import training_settings
from tests.test_train import assert_equals_separate_models, experiment, stacked_group

REGS = {
    "none": {},
    "l2": {"weight_decay": 0.05},
    "l2_dropout": {"weight_decay": 0.1, "dropout": 0.2},
    "bn_l2": {"batchnorm": True, "weight_decay": 0.05},
}
ADAM = {"optimizer": "adam", "lr": 0.01, "adam_betas": [0.8, 0.99], "adam_eps": 1e-6}
OPTIONS = {
    "adam_coupled": ADAM,
    # The reference is torch.optim.AdamW on a separate module.
    "adam_decoupled": {**ADAM, "l2_mode": "decoupled"},
    "adam_decoupled_all": {**ADAM, "l2_mode": "decoupled", "decay": "all"},
    "sgd_penalty": {"l2_mode": "penalty"},
    "adam_penalty": {**ADAM, "l2_mode": "penalty"},
    "sgd_decay_all": {"decay": "all"},
    "inverse_sqrt": {"schedule": "inverse_sqrt", "schedule_steps": 2},
    "mse": {"loss": "mse", "lr": 0.01},
}


@pytest.mark.parametrize("gid", ["width~6_norm~none", "width~6_norm~batch"])
@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
def test_option_equals_separate_models(small_data, options, gid):
    exp = experiment(REGS, widths=(6,), seeds=(0,), training=options)
    assert_equals_separate_models(exp, small_data, gid)


def test_batchnorm_after_activation_equals_separate_models(small_data):
    exp = experiment(
        REGS, widths=(6,), seeds=(0,), model={"batchnorm_position": "after_activation"}
    )
    assert_equals_separate_models(exp, small_data, "width~6_norm~batch")


def test_batchnorm_position_changes_the_network(small_data):
    outs = []
    for position in ("before_activation", "after_activation"):
        exp = experiment(
            {"bn": {"batchnorm": True}},
            widths=(6,),
            seeds=(0,),
            model={"batchnorm_position": position},
        )
        group, data, _ = stacked_group(exp, small_data, "width~6_norm~batch")
        outs.append(group.model(data.x_train[:32]))
    assert not torch.allclose(*outs)


def trained(small_data, regs, training, steps=6):
    """A group's parameters after `steps` steps on the first minibatches, taken in order."""
    group, data, _ = stacked_group(
        experiment(regs, widths=(6,), seeds=(0,), training=training),
        small_data,
        "width~6_norm~none",
    )
    for s in range(steps):
        idx = torch.arange(s * 32, (s + 1) * 32).expand(len(group.runs), 32)
        train.train_step(group, data.x_train[idx], data.y_train[idx])
    return [p.detach().clone() for p in group.model.parameters()]


def assert_params_close(a, b):
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)


def test_penalty_equals_coupled_sgd_with_twice_the_coefficient(small_data):
    penalty = trained(small_data, {"l2": {"weight_decay": 0.05}}, {"l2_mode": "penalty"})
    coupled = trained(small_data, {"l2": {"weight_decay": 0.1}}, {"l2_mode": "coupled"})
    assert_params_close(penalty, coupled)


def test_adam_coupled_and_decoupled_differ(small_data):
    regs = {"l2": {"weight_decay": 0.1}}
    coupled = trained(small_data, regs, {**ADAM, "l2_mode": "coupled"})
    decoupled = trained(small_data, regs, {**ADAM, "l2_mode": "decoupled"})
    assert not torch.allclose(coupled[0], decoupled[0])


def test_decay_all_shrinks_the_biases_too(small_data):
    # One plain SGD step from the same start: the biases differ by exactly -lr * wd * b0.
    regs, sgd = {"l2": {"weight_decay": 0.5}}, {"lr": 0.1, "momentum": 0.0}
    start = trained(small_data, regs, sgd, steps=0)
    weights = trained(small_data, regs, {**sgd, "decay": "weights"}, steps=1)
    everything = trained(small_data, regs, {**sgd, "decay": "all"}, steps=1)
    model = stacked_group(
        experiment(regs, widths=(6,), seeds=(0,)), small_data, "width~6_norm~none"
    )[0].model
    names = [n for n, _ in model.named_parameters()]
    assert sum(n.endswith(".bias") for n in names) == 3  # the MLP's three layers
    for name, p0, w, a in zip(names, start, weights, everything):
        if name.endswith(".bias"):
            torch.testing.assert_close(a - w, -0.1 * 0.5 * p0, rtol=1e-9, atol=1e-12)
        else:
            torch.testing.assert_close(a, w, rtol=1e-12, atol=1e-14)


def test_learning_rate_schedules():
    tr = training_settings(lr=0.1, schedule="inverse_sqrt", schedule_steps=512)
    got = [train.learning_rate(tr, t) for t in (0, 511, 512, 1023, 1024, 2048)]
    want = [
        0.1,
        0.1,
        0.1 / math.sqrt(2),
        0.1 / math.sqrt(2),
        0.1 / math.sqrt(3),
        0.1 / math.sqrt(5),
    ]
    assert got == pytest.approx(want, rel=1e-15)
    assert train.learning_rate(dataclasses.replace(tr, schedule="constant"), 10**6) == 0.1
    with pytest.raises(ValueError, match="schedule"):
        train.learning_rate(dataclasses.replace(tr, schedule="cosine"), 0)


def test_schedule_step_survives_checkpoint_and_resume(tmp_path, small_data):
    exp = experiment(
        {"none": {}},
        widths=(6,),
        seeds=(0,),
        training={"schedule": "inverse_sqrt", "schedule_steps": 2},
    )
    spec = config.group_spec("t", exp, "width~6_norm~none")
    whole = train.train_group(
        spec, small_data, device="cpu", log=lambda s: None, dtype=torch.float64
    )
    group, data, _ = stacked_group(exp, small_data, "width~6_norm~none")
    train.train_epoch(group, data, spec.training.batch_size)
    assert group.step == math.ceil(300 / 64)
    checkpoint.save(tmp_path / "c.pt", spec, group, checkpoint.Progress())
    resumed = train.train_group(
        spec,
        small_data,
        device="cpu",
        log=lambda s: None,
        dtype=torch.float64,
        checkpoint_path=tmp_path / "c.pt",
    )
    last = whole[whole.epoch == 2].reset_index(drop=True)
    for col in ("train_loss", "test_loss", "test_error"):
        assert resumed[col].tolist() == pytest.approx(last[col].tolist(), rel=1e-12)


def test_mse_loss_convention():
    logits = torch.tensor([[[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]]], dtype=torch.float64)
    y = torch.tensor([0, 2])
    # Per sample, summed over classes: (1 + 0 + 1) and (0.25 + 0.25 + 0.25).
    torch.testing.assert_close(
        train.sample_losses(logits, y, "mse"), torch.tensor([[2.0, 0.75]], dtype=torch.float64)
    )


def test_evaluation_reports_the_configured_loss(small_data):
    exp = experiment({"none": {}}, widths=(6,), seeds=(0, 1), training={"loss": "mse"})
    group, data, _ = stacked_group(exp, small_data, "width~6_norm~none")
    logits = train.predict(group.model, data.x_test)
    onehot = torch.nn.functional.one_hot(data.y_test, 10).double()
    expected = ((logits - onehot) ** 2).sum(-1).mean(1)
    torch.testing.assert_close(train.evaluate(group.model, data, "mse")["test_loss"], expected)
    ce = train.evaluate(group.model, data, "cross_entropy")["test_loss"]
    assert not torch.allclose(ce, expected)

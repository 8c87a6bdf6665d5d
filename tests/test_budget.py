"""Step budgets: training.steps instead of epochs, evaluation points in steps, resume
mid-epoch, and a sample-wise sweep that gives every size the same number of steps."""

from __future__ import annotations

import pytest
import torch

from doubledescent import config, plots, resources, train
from doubledescent.specs import TrainingSettings
from tests.conftest import SCHEMA, crash_on_call

METRICS = ["epoch", "step", "train_loss", "train_error", "test_loss", "test_error", "noisy_fit"]


def experiment(training: dict, n_train=300) -> dict:
    """A validated experiment: two variants (one with dropout) x two seeds at width 6."""
    exp = {
        "dataset": {"name": "mnist1d", "n_train": n_train, "n_test": 200, "seed": 7},
        "model": {"name": "mlp"},
        "widths": [6],
        "regularizers": {"none": {}, "dropout": {"dropout": 0.3}},
        "seeds": [0, 1],
        "training": {"lr": 0.05, "batch_size": 64, **training},
    }
    return config.validate({"experiments": {"e": exp}}, SCHEMA)["experiments"]["e"]


def counted(monkeypatch) -> list[int]:
    """Count the gradient steps that training takes."""
    calls, step = [], train.train_step

    def counting(group, xb, yb):
        calls.append(xb.shape[1])  # the batch's size
        step(group, xb, yb)

    monkeypatch.setattr(train, "train_step", counting)
    return calls


def test_a_steps_budget_trains_exactly_that_many_steps(monkeypatch, small_data):
    exp = experiment({"steps": 13, "eval_steps": [4, 10]})
    assert "epochs" not in exp["training"] and "eval_epochs" not in exp["training"]
    calls = counted(monkeypatch)
    table = train.train_group(
        config.group_spec("e", exp, "width~6_norm~none"), small_data, device="cpu", log=print
    )
    # 300 samples in batches of 64: 5 steps an epoch, the last of 44 samples; the third
    # epoch stops at the budget, 3 of its 5 steps in.
    assert len(calls) == 13 and calls[:5] == [64, 64, 64, 64, 44]
    assert sorted(set(table["step"])) == [4, 10, 13]
    assert sorted(set(table["epoch"])) == pytest.approx([0.8, 2.0, 2.6])


def test_an_epochs_budget_counts_its_steps_too(monkeypatch, small_data):
    exp = experiment({"epochs": 3, "eval_epochs": [1, 3]})
    calls = counted(monkeypatch)
    table = train.train_group(
        config.group_spec("e", exp, "width~6_norm~none"), small_data, device="cpu", log=print
    )
    assert len(calls) == 15
    assert table[["epoch", "step"]].drop_duplicates().values.tolist() == [[1, 5], [3, 15]]
    assert table["epoch"].dtype.kind == "i"  # whole epochs, as before steps existed


def test_a_steps_budget_resumes_mid_epoch_with_the_same_numbers(monkeypatch, tmp_path, small_data):
    """Saves every 5 steps (an epoch of the 300 prepared samples), while the 150-sample size
    has 3 steps an epoch: the save at step 5 falls inside its second epoch."""
    exp = experiment({"steps": 11, "eval_steps": [2, 5, 8]}, n_train=[150, 300])
    spec = config.group_spec("e", exp, "n~150_width~6_norm~none")
    whole = train.train_group(spec, small_data, device="cpu", log=lambda s: None)

    step = crash_on_call(monkeypatch, train, "train_step", 7)
    ckpt = tmp_path / "c.pt"
    kwargs = dict(device="cpu", checkpoint_path=ckpt, checkpoint_every=1)
    with pytest.raises(KeyboardInterrupt):
        train.train_group(spec, small_data, log=lambda s: None, **kwargs)
    saved = torch.load(ckpt, weights_only=False)
    assert saved["step"] == 5 and saved["progress"]["order"] is not None  # mid-epoch
    monkeypatch.setattr(train, "train_step", step)
    lines = []
    resumed = train.train_group(spec, small_data, log=lines.append, **kwargs)
    assert lines[0] == "resuming from the checkpoint at step 5 (epoch 1.667)"
    assert lines[-1].startswith("step 11/11  epoch 3.667/3.667")
    assert resumed[METRICS].equals(whole[METRICS])


def test_a_sample_wise_sweep_with_a_steps_budget_gives_every_size_the_same_steps(
    monkeypatch, small_data
):
    exp = experiment({"steps": 12, "eval_steps": 3}, n_train=[100, 300])
    steps = {}
    for n in (100, 300):
        calls = counted(monkeypatch)
        spec = config.group_spec("e", exp, f"n~{n}_width~6_norm~none")
        table = train.train_group(spec, small_data, device="cpu", log=lambda s: None)
        steps[n] = (len(calls), sorted(set(table["step"])), table["epoch"].max())
        monkeypatch.undo()
    assert steps[100][:2] == steps[300][:2] == (12, [1, 3, 12])  # geomspace(1, 12, 3)
    assert steps[100][2] == pytest.approx(12 / 2) and steps[300][2] == pytest.approx(12 / 5)
    # Their training costs the same too: steps x batch samples, whatever the size; only the
    # evaluations, over n_train + n_test samples, grow a little with the size.
    cost = [resources.train_seconds(exp, 6, 4, n) for n in (100, 300)]
    assert cost[0] < cost[1] == pytest.approx(cost[0], rel=0.02)


@pytest.mark.parametrize(
    "training,message",
    [
        ({"steps": 10, "epochs": 5}, "training: give either epochs or steps, not both"),
        ({"steps": 10, "eval_epochs": 5}, "give either eval_epochs or steps, not both"),
        ({"eval_steps": 5}, "training.eval_steps: needs a steps budget (training.steps)"),
        ({"steps": 10, "eval_steps": [3, 11]}, "eval_steps: step 11 is past the last step (10)"),
        ({"steps": 0}, "training.steps: 0 is less than the minimum of 1"),
    ],
)
def test_budget_errors(training, message):
    with pytest.raises(config.ConfigError) as e:
        experiment(training)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_neither_budget_is_the_default_of_500_epochs():
    tr = experiment({})["training"]
    assert tr["epochs"] == 500 and "steps" not in tr and "eval_steps" not in tr
    assert TrainingSettings.from_dict(tr).budget_steps(300) == 500 * 5


def test_epoch_wise_figures_follow_the_budget(small_data):
    """Against the step where evaluations fall inside epochs, else against the epoch."""
    for training, time in [
        ({"steps": 13, "eval_steps": [4, 10]}, "step"),
        ({"epochs": 2}, "epoch"),
    ]:
        spec = config.group_spec("e", experiment(training), "width~6_norm~none")
        table = train.train_group(spec, small_data, device="cpu", log=lambda s: None)
        assert plots.epoch_wise(table).axes[0].get_xlabel() == time
        ax = plots.epoch_curves(table).axes[0]
        assert ax.get_xlabel() == time
        assert sorted(ax.lines[0].get_xdata()) == sorted(set(table[time]))

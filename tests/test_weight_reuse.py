"""Belkin et al.'s protocol: weight reuse between consecutive widths (in the network and in
the DAG), Glorot-uniform initialization, the step schedule and stopping at zero train error."""

from __future__ import annotations

import dataclasses
import math
import re

import pandas as pd
import pytest
import torch
import yaml

from doubledescent import config, reuse, train
from doubledescent.errors import DataError
from tests.conftest import REPO, SCHEMA, snakemake, training_settings

CONFIG = REPO / "tests" / "configs" / "tiny_reuse.yaml"


def experiment(training: dict, widths=(4, 8, 16), model=None, regularizers=None) -> dict:
    exp = {
        "dataset": {"name": "mnist1d", "n_train": 300, "n_test": 200, "seed": 7},
        "model": {"name": "mlp", "depth": 2, **(model or {})},
        "widths": list(widths),
        "regularizers": regularizers or {"none": {}, "bn": {"batchnorm": True}},
        "seeds": [0, 1],
        "training": {"lr": 0.05, "batch_size": 64, **training},
    }
    return config.validate({"experiments": {"e": exp}}, SCHEMA)["experiments"]["e"]


def test_each_width_below_the_threshold_starts_from_the_next_smaller_one():
    exp = experiment({"epochs": 2, "weight_reuse": {"below_width": 16}})
    sources = {gid: config.reuse_source(exp, gid) for gid in config.groups(exp)}
    assert sources == {
        "width~4_norm~none": None,  # the smallest width starts afresh
        "width~4_norm~batch": None,
        "width~8_norm~none": "width~4_norm~none",
        "width~8_norm~batch": "width~4_norm~batch",
        "width~16_norm~none": None,  # at the threshold: afresh
        "width~16_norm~batch": None,
    }
    assert config.group_spec("e", exp, "width~8_norm~none").reuse_from == "width~4_norm~none"
    fresh = config.group_spec("e", experiment({}), "width~8_norm~none")
    assert fresh.reuse_from is None and "reuse_from" not in config.plain_spec(fresh)


def test_a_reused_network_starts_from_the_smaller_ones_final_weights(tmp_path, small_data):
    exp = experiment({"epochs": 2, "weight_reuse": {"below_width": 100}})
    small = config.group_spec("e", exp, "width~4_norm~batch")
    train.train_group(
        small, small_data, device="cpu", log=lambda s: None, weights_out=tmp_path / "w4.pt"
    )
    saved = reuse.load(tmp_path / "w4.pt")
    assert saved["runs"] == [("bn", 0), ("bn", 1)]

    spec = config.group_spec("e", exp, "width~8_norm~batch")
    runs = list(spec.runs)
    group = train.make_group(spec, runs, (40,), 10, "cpu")
    reuse.grow(group.model, runs, saved, [train.generator(r.seed, "reuse") for r in runs])
    state = group.model.state_dict()
    for name, old in saved["state"].items():
        block = (slice(None), *(slice(0, k) for k in old.shape[1:]))
        torch.testing.assert_close(state[name][block], old, rtol=0, atol=0)
    # The new units: weights and biases from N(0, 0.01), batchnorm as initialized.
    new = torch.cat(
        [
            state["linears.0.weight"][:, :, 4:].flatten(),
            state["linears.1.weight"][:, 4:, :].flatten(),
            state["linears.1.weight"][:, :4, 4:].flatten(),
            state["linears.2.weight"][:, 4:, :].flatten(),
            state["linears.1.bias"][:, :, 4:].flatten(),
        ]
    )
    assert len(new) == 2 * (40 * 4 + 4 * 8 + 4 * 4 + 4 * 10 + 4)
    assert abs(new.mean()) < 0.02 and new.std() == pytest.approx(0.1, rel=0.1)
    assert (state["norms.0.weight"][:, :, 4:] == 1).all()
    assert (state["norms.0.running_var"][:, :, 4:] == 1).all()
    # The runs draw from their own seeds' streams: seed 0's new units are seed 0's anywhere.
    assert not torch.equal(state["linears.2.weight"][0, 4:], state["linears.2.weight"][1, 4:])


def test_weights_of_an_older_layout_are_refused_in_one_line():
    """Weights saved before the MLP's layers held their own parameters (`weights.0`, not
    `linears.0.weight`) name tensors this model lacks: a DataError, not a KeyError."""
    spec = config.group_spec(
        "e", experiment({"weight_reuse": {"below_width": 100}}), "width~8_norm~none"
    )
    runs = list(spec.runs)
    group = train.make_group(spec, runs, (40,), 10, "cpu")
    old_names = {"weights.0": torch.zeros(2, 40, 4), "biases.0": torch.zeros(2, 1, 4)}
    saved = {"runs": [("none", 0), ("none", 1)], "state": old_names}
    gens = [train.generator(r.seed, "reuse") for r in runs]
    with pytest.raises(DataError, match=r"^the weights to start from lack linears\.0\.bias and 5 "):
        reuse.grow(group.model, runs, saved, gens)


def test_glorot_uniform_initialization():
    exp = experiment({"epochs": 1}, widths=(300,), model={"init": "glorot_uniform"})
    spec = config.group_spec("e", exp, "width~300_norm~none")
    group = train.make_group(spec, list(spec.runs), (40,), 10, "cpu")
    for layer in group.model.linears:
        w, b = layer.weight, layer.bias
        bound = math.sqrt(6 / (w.shape[1] + w.shape[2]))
        assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
        assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
        assert (b == 0).all()


def test_the_step_schedule_decays_by_its_factor():
    tr = training_settings(lr=0.1, schedule="step", schedule_steps=500, schedule_gamma=0.9)
    assert [train.learning_rate(tr, t) for t in (0, 499, 500, 1499, 1500)] == pytest.approx(
        [0.1, 0.1, 0.09, 0.081, 0.1 * 0.9**3]
    )
    tr = dataclasses.replace(tr, schedule_gamma=None)  # 0.9 when not given
    assert train.learning_rate(tr, 1000) == pytest.approx(0.081)


def test_a_run_at_zero_train_error_stops_updating(small_data):
    """The unregularized run fits its 300 samples; the strongly decayed one cannot. From the
    epoch it first fits them on (evaluated every epoch), its numbers stay; until then they
    equal those of the same run trained without stopping."""
    regs = {"none": {}, "l2": {"weight_decay": 0.5}}
    tr = {"epochs": 40, "eval_epochs": list(range(1, 41)), "lr": 0.1}
    table = {}
    for stop in (True, False):
        exp = experiment({**tr, "stop_at_zero_train_error": stop}, (256,), regularizers=regs)
        spec = config.group_spec("e", exp, "width~256_norm~none")
        t = train.train_group(spec, small_data, device="cpu", log=lambda s: None)
        table[stop] = t[t.seed == 0].set_index(["regularizer", "epoch"])
    cols = ["train_loss", "train_error", "test_error"]
    stopped, free = table[True].loc["none", cols], table[False].loc["none", cols]
    fitted = stopped.index[stopped.train_error == 0]
    assert len(fitted) and fitted[0] < 40, "width 256 should fit 300 samples: make it easier"
    first = fitted[0]
    assert (stopped.loc[first:].nunique() == 1).all()  # frozen from its first zero on
    assert free.loc[first:, "train_loss"].nunique() > 1  # without stopping it goes on
    pd.testing.assert_frame_equal(stopped.loc[:first], free.loc[:first])
    l2 = table[True].loc["l2"]
    # Never fitted, so never frozen: it kept training (two epochs' float32 losses may still
    # round to the same value near its fixed point, so distinct values are not asked for).
    assert l2.train_error.min() > 0 and l2.train_loss.loc[first:].nunique() > 1
    pd.testing.assert_frame_equal(l2[cols], table[False].loc["l2", cols])


@pytest.mark.parametrize(
    "model,training,message",
    [
        ("cnn5", {"weight_reuse": {"below_width": 8}}, "training.weight_reuse: only the mlp"),
        ("cnn5", {}, "model.init: only the mlp supports it"),
    ],
)
def test_reuse_and_init_are_mlp_only(model, training, message):
    exp = {
        "dataset": {"name": "cifar10", "n_train": 10, "n_test": 10},
        "model": {"name": model, **({} if training else {"init": "glorot_uniform"})},
        "widths": [2],
        "regularizers": {"none": {}},
        "seeds": [0],
        "training": training,
    }
    with pytest.raises(config.ConfigError) as e:
        config.validate({"experiments": {"e": exp}}, SCHEMA)
    assert message in str(e.value)


def train_jobs(proc) -> set[str]:
    """The groups a Snakemake dry run would train (from the training rules' messages)."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    return set(re.findall(r"^Job \d+: Training tiny_reuse (\S+)$", proc.stdout, re.M))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reuse")
    proc = snakemake(workdir, "results/tiny_reuse/metrics.parquet", configfile=CONFIG)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir


def test_pipeline_passes_weights_up_the_chain(pipeline):
    out = pipeline / "results" / "tiny_reuse"
    assert {p.stem for p in (out / "weights").iterdir()} == {
        f"width~{w}_norm~none" for w in (2, 4, 8, 16)
    }
    df = pd.read_parquet(out / "metrics.parquet")
    assert set(df.step) == {1, 40} and df.run_id.nunique() == 8  # eval_steps: 2
    log = (out / "logs" / "train" / "width~8_norm~none.log").read_text()
    assert "step 40/40" in log


def test_changing_a_small_width_retrains_it_and_the_chain_after_it(pipeline, tmp_path):
    assert train_jobs(snakemake(pipeline, "-n", configfile=CONFIG)) == set()
    changed = yaml.safe_load(CONFIG.read_text())
    changed["experiments"]["tiny_reuse"]["widths"] = [2, 5, 8, 16]
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(changed))
    proc = snakemake(pipeline, "-n", configfile=tmp_path / "changed.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert train_jobs(proc) == {"width~5_norm~none", "width~8_norm~none"}


def test_retraining_a_small_width_retrains_the_chain_after_it(pipeline):
    """Width 2 retrained (forced): then 4 and 8 from its new weights; 16, at the threshold,
    stays. (A mere `touch` retrains nothing: Snakemake sees the same checksum.)"""
    table = "results/tiny_reuse/groups/width~2_norm~none.parquet"
    proc = snakemake(pipeline, "-n", "--forcerun", table, configfile=CONFIG)
    assert train_jobs(proc) == {f"width~{w}_norm~none" for w in (2, 4, 8)}

"""Packing: every group of an experiment in one zero-padded model, each run with exactly its
unpacked numbers (float64, against train_group of each group alone), padding that stays 0,
resume of a pack, and the job plan (which jobs a config gets on the CPU and on a GPU)."""

import json

import pandas as pd
import pytest
import torch
import yaml

from doubledescent import config, data, estimate, packing, status, train
from doubledescent.models.padded import PaddedMLP
from doubledescent.results import METRICS
from tests import test_cuda
from tests.conftest import (
    REPO,
    SCHEMA,
    TINY,
    TINY_TABLE,
    check_tiny_metrics,
    crash_on_call,
    snakemake,
)
from tests.test_train import VARIANTS, experiment

# Both optimizers, every L2 mode, decay of weights or of everything, both batchnorm places,
# both initializations.
TRAININGS = {
    "sgd_coupled": ({"optimizer": "sgd", "l2_mode": "coupled"}, {}),
    "sgd_penalty_all": (
        {"optimizer": "sgd", "l2_mode": "penalty", "decay": "all"},
        {"batchnorm_position": "after_activation", "init": "glorot_uniform"},
    ),
    "adam_decoupled_all": (
        {"optimizer": "adam", "lr": 0.01, "l2_mode": "decoupled", "decay": "all"},
        {"init": "glorot_uniform"},
    ),
    "adam_coupled_schedule": (
        {
            "optimizer": "adam",
            "lr": 0.01,
            "l2_mode": "coupled",
            "schedule": "inverse_sqrt",
            "schedule_steps": 3,
        },
        {"batchnorm_position": "after_activation"},
    ),
}
WIDTHS = (3, 7, 16)
EPOCHS = 3
SAME = ["run_id", "epoch", "group", "group_size", "n_params", "width", "batchnorm", "diverged"]


def packed_experiment(case: str) -> dict:
    training, model = TRAININGS[case]
    return experiment(
        VARIANTS,  # every regularizer, alone and together; batchnorm beside plain runs
        widths=WIDTHS,
        epochs=EPOCHS,
        training=training,
        model=model,
    )


def quiet(spec, arrays, **kwargs):
    return train.train_group(spec, arrays, device="cpu", log=lambda s: None, **kwargs)


@pytest.mark.parametrize("case", TRAININGS)
def test_a_pack_trains_every_group_as_alone(small_data, case):
    exp = packed_experiment(case)
    pack = packing.job_spec("t", exp, "pack")
    packed = quiet(pack, small_data, dtype=torch.float64)
    assert packed.group.nunique() == len(config.groups(exp)) == 2 * len(WIDTHS)
    assert (packed.pack == "pack").all()
    for gid in config.groups(exp):
        alone = quiet(config.group_spec("t", exp, gid), small_data, dtype=torch.float64)
        mine = packed[packed.group == gid].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine[SAME], alone[SAME])
        pd.testing.assert_frame_equal(mine[METRICS], alone[METRICS], rtol=0, atol=1e-10)


def train_epochs(spec: dict, arrays) -> train.Group:
    runs = list(spec.runs)
    group = train.make_group(spec, runs, (40,), 10, "cpu", torch.float64)
    data = train.Tensors.from_arrays(arrays, "cpu", torch.float64)
    for _ in range(EPOCHS):
        train.train_epoch(group, data, spec.training.batch_size)
    return group


def split(pack_param: torch.Tensor, own: torch.Tensor | None):
    """A pack's slice of a parameter -> (its runs' unpadded values, the padded entries)."""
    padding = torch.ones_like(pack_param, dtype=torch.bool)
    if own is None:  # a batchnorm parameter of runs without batchnorm: all unused
        return None, pack_param[padding]
    corner = (slice(None), *(slice(0, n) for n in own.shape[1:]))
    padding[corner] = False
    return pack_param[corner], pack_param[padding]


@pytest.mark.parametrize("case", TRAININGS)
def test_padding_stays_zero_and_each_run_keeps_its_parameters(small_data, case):
    exp = packed_experiment(case)
    pack = train_epochs(packing.job_spec("t", exp, "pack"), small_data)
    assert isinstance(pack.model, PaddedMLP)
    params = {name: p.detach() for name, p in pack.model.named_parameters()}
    padded = dict.fromkeys(params, 0)  # padded entries checked, per parameter
    first = 0
    for gid in config.groups(exp):
        alone = train_epochs(config.group_spec("t", exp, gid), small_data)
        own = {name: p.detach() for name, p in alone.model.named_parameters()}
        for name, p in params.items():
            values, padding = split(p[first : first + len(alone.runs)], own.get(name))
            # float64 rounding only (GEMMs of other shapes), which Adam's division by
            # sqrt(v) magnifies on parameters with tiny gradients (glorot's zero biases).
            if values is not None:
                torch.testing.assert_close(values, own[name], rtol=1e-8, atol=1e-9)
            assert torch.equal(padding, torch.zeros_like(padding)), name
            padded[name] += len(padding)
        first += len(alone.runs)
    # Every parameter but the classifier's bias (10 classes for every run) has padding.
    assert [name for name, n in padded.items() if n == 0] == ["linears.2.bias"]


def test_a_pack_resumes_after_a_crash_with_the_same_numbers(small_data, tmp_path, monkeypatch):
    spec = packing.job_spec("t", packed_experiment("adam_decoupled_all"), "pack")
    whole = quiet(spec, small_data)
    real_epoch = crash_on_call(monkeypatch, train, "train_epoch", 3)  # in the third epoch
    kwargs = {"checkpoint_path": tmp_path / "pack.pt", "checkpoint_every": 1}
    with pytest.raises(KeyboardInterrupt):
        quiet(spec, small_data, **kwargs)
    monkeypatch.setattr(train, "train_epoch", real_epoch)
    lines = []
    resumed = train.train_group(spec, small_data, device="cpu", log=lines.append, **kwargs)
    assert lines[0].startswith("resuming from the checkpoint at step") and "(epoch 2)" in lines[0]
    pd.testing.assert_frame_equal(resumed, whole.assign(wall_time=resumed.wall_time))


DEFAULT = config.load(REPO / "config.yaml", SCHEMA)


@pytest.mark.parametrize("cards", ["", "0"])  # CUDA_VISIBLE_DEVICES: no card, one card
def test_jobs_of_the_default_config_on_a_cpu_and_on_a_gpu(monkeypatch, tmp_path, cards):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", cards)
    packs = packing.enabled(DEFAULT["packing"], DEFAULT["device"])
    assert packs == bool(cards)
    # doubledescent estimate counts the jobs the workflow runs
    assert [c.jobs for c in estimate.costs(DEFAULT, cores=2)] == [
        len(packing.jobs(exp, packs)) for exp in DEFAULT["experiments"].values()
    ]
    for name, exp in DEFAULT["experiments"].items():
        jobs = packing.jobs(exp, packs)
        if not packs:  # the CPU's jobs, ids and specs (Snakemake's rerun keys) as without packing
            assert jobs == config.groups(exp)
            for gid in jobs:
                assert packing.job_spec(name, exp, gid) == config.group_spec(name, exp, gid)
            continue
        assert list(jobs) == ["pack"]
        assert [g.name for g in status.groups(tmp_path, name, exp, packs)] == ["pack"]
        pack = packing.job_spec(name, exp, "pack")
        assert pack.runs == tuple(
            r for gid in config.groups(exp) for r in config.group_spec(name, exp, gid).runs
        )
        assert pack.width == max(exp["widths"]) and pack.group == "pack"


def test_packing_choices():
    assert packing.enabled("experiment", "cpu") and not packing.enabled("none", "cuda")
    assert packing.enabled("auto", "cuda") and not packing.enabled("auto", "cpu")
    sweep = {**DEFAULT["experiments"]["mnist1d_mlp"]}
    sweep["dataset"] = {**sweep["dataset"], "n_train": [1000, 4000]}
    assert list(packing.jobs(sweep, True)) == ["n~1000_pack", "n~4000_pack"]
    assert packing.job_spec("s", sweep, "n~1000_pack").n_train == 1000
    noise = {**sweep, "dataset": {**sweep["dataset"], "label_noise": [0.0, 0.2]}}
    noise = config.validate({"experiments": {"q": noise}}, SCHEMA)["experiments"]["q"]
    assert list(packing.jobs(noise, True)) == [  # one pack per prepared dataset and size
        f"noise~{q}_n~{n}_pack" for q in ("0", "0.2") for n in (1000, 4000)
    ]
    reusing = {**sweep, "training": {**sweep["training"], "weight_reuse": {"below_width": 50}}}
    assert packing.jobs(reusing, True) == config.groups(reusing)  # widths train in a chain
    conv = test_cuda.experiment("cnn5", {"none": {}})
    assert packing.jobs(conv, True) == config.groups(conv)  # conv nets stay one group a job
    with pytest.raises(ValueError, match="no training job 'n~2000_pack'"):
        packing.job_spec("s", sweep, "n~2000_pack")


def test_the_pipeline_trains_a_packed_experiment_in_one_job(tmp_path):
    cfg = {**yaml.safe_load(TINY.read_text()), "packing": "experiment", "device": "cpu"}
    configfile = tmp_path / "packed.yaml"
    configfile.write_text(yaml.safe_dump(cfg))
    provenance = "results/tiny/provenance.json"  # the table and what it records
    proc = snakemake(tmp_path, TINY_TABLE, provenance, configfile=configfile)
    assert proc.returncode == 0, proc.stderr[-3000:]
    df = check_tiny_metrics(tmp_path)
    tables = sorted(p.name for p in (tmp_path / "results" / "tiny" / "groups").iterdir())
    assert tables == ["pack.parquet"]
    exp = config.validate(cfg, SCHEMA)["experiments"]["tiny"]
    assert set(df.group) == set(config.groups(exp)) and (df.pack == "pack").all()
    assert (df.group_size == df.group.map(df.groupby("group").run_id.nunique())).all()
    prov = json.loads((tmp_path / "results" / "tiny" / "provenance.json").read_text())
    assert prov["training"]["groups"] == len(config.groups(exp))
    assert prov["training"]["train_seconds"] == df.wall_time.max()  # one job's time
    # Each group trained alone gives the same numbers up to float32 rounding.
    arrays = data.load(tmp_path / "results" / "tiny" / "data.npz")
    gid = "width~32_norm~batch"
    alone = quiet(config.group_spec("tiny", exp, gid), arrays)
    mine = df[df.group == gid].sort_values(["run_id", "epoch"], ignore_index=True)
    alone = alone.sort_values(["run_id", "epoch"], ignore_index=True)
    pd.testing.assert_frame_equal(mine[["test_loss"]], alone[["test_loss"]], rtol=1e-4)
    # Without packing the same config plans one job per group.
    unpacked = tmp_path / "unpacked.yaml"
    unpacked.write_text(yaml.safe_dump({**cfg, "packing": "none"}))
    plan = snakemake(tmp_path, "-n", "--quiet", "rules", configfile=unpacked).stdout
    train_line = next(line for line in plan.splitlines() if line.startswith("train_group"))
    assert train_line.split()[1] == str(len(config.groups(exp)))

"""Bad configs and inputs: each stops before any training with one line that names the
problem, and leaves finished results as they were."""

import copy
import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from doubledescent import cli, config, data
from tests.conftest import SCHEMA, TINY, snakemake

TINY_CONFIG = yaml.safe_load(TINY.read_text())
DELETE = object()


def tiny_with(path: str, value) -> str:
    """The tiny config as YAML, with one key (dotted path from the top) set or deleted."""
    cfg = copy.deepcopy(TINY_CONFIG)
    *parents, last = path.split(".")
    node = cfg
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return yaml.safe_dump(cfg, sort_keys=False)


EXP = "experiments.tiny"
CONFIG_CASES = [
    pytest.param(
        tiny_with("bogus", 1), "config: 'bogus' was unexpected", id="unknown-top-level-key"
    ),
    pytest.param(
        tiny_with(f"{EXP}.epochs", 5),
        "config.experiments.tiny: 'epochs' was unexpected",
        id="unknown-experiment-key",
    ),
    pytest.param(
        tiny_with(f"{EXP}.seeds", DELETE),
        "'seeds' is a required property",
        id="missing-required-key",
    ),
    pytest.param(
        tiny_with(f"{EXP}.dataset.name", "imagenet"),
        "config.experiments.tiny.dataset.name: 'imagenet' is not one of",
        id="unknown-dataset",
    ),
    pytest.param(
        tiny_with(f"{EXP}.model.name", "resnet"),
        "config.experiments.tiny.model.name: 'resnet' is not one of",
        id="unknown-model",
    ),
    pytest.param(
        tiny_with(f"{EXP}.model.name", "cnn5"),
        "config.experiments.tiny.model.name: cnn5 needs image data",
        id="model-vs-data",
    ),
    pytest.param(
        tiny_with(f"{EXP}.regularizers.l2", {"weight_decay": 0.1, "l1": 0.1}),
        "config.experiments.tiny.regularizers.l2: 'l1' was unexpected",
        id="unknown-regularizer-key",
    ),
    pytest.param(
        tiny_with(f"{EXP}.widths", [4, "64"]),
        "config.experiments.tiny.widths[1]: '64' is not of type 'integer'",
        id="string-width",
    ),
    pytest.param(
        tiny_with(f"{EXP}.widths", []),
        "config.experiments.tiny.widths: [] should be non-empty",
        id="empty-widths",
    ),
    pytest.param(
        tiny_with(f"{EXP}.widths", [0, 4]),
        "config.experiments.tiny.widths[0]: 0 is less than the minimum of 1",
        id="zero-width",
    ),
    pytest.param(
        tiny_with(f"{EXP}.widths", [4, 32, 4]),
        "config.experiments.tiny.widths: [4, 32, 4] has non-unique elements",
        id="duplicate-widths",
    ),
    pytest.param(
        tiny_with(f"{EXP}.regularizers.l2.weight_decay", -0.1),
        "regularizers.l2.weight_decay: -0.1 is less than the minimum of 0",
        id="negative-weight-decay",
    ),
    pytest.param(
        tiny_with(f"{EXP}.regularizers.dropout.dropout", 1.0),
        "regularizers.dropout.dropout: 1.0 is greater than or equal to the maximum of 1",
        id="dropout-one",
    ),
    pytest.param(
        tiny_with(f"{EXP}.dataset.label_noise", 1.5),
        "dataset.label_noise: 1.5 is greater than the maximum of 1",
        id="label-noise-above-one",
    ),
    pytest.param(
        tiny_with(f"{EXP}.dataset.label_noise", -0.1),
        "dataset.label_noise: -0.1 is less than the minimum of 0",
        id="label-noise-negative",
    ),
    pytest.param(
        tiny_with(f"{EXP}.training.eval_epochs", [2, 10]),
        "training.eval_epochs: epoch 10 is past the last epoch (6)",
        id="eval-epoch-past-last",
    ),
    pytest.param(
        tiny_with("device", "tpu"), "config.device: 'tpu' is not one of", id="unknown-device"
    ),
    pytest.param(
        tiny_with("experiments.TINY", TINY_CONFIG["experiments"]["tiny"]),
        "'tiny' and 'TINY' differ only in case",
        id="colliding-experiment-names",
    ),
    # Appended at the file's end, this re-opens `tiny` inside `experiments`.
    pytest.param(
        TINY.read_text() + "  tiny: {widths: [8]}\n",
        "duplicate key 'tiny'",
        id="duplicate-experiment-name",
    ),
]


def finished_file(path):
    """Write a finished-looking results file at `path`; return a check that it is unchanged."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("finished results\n")
    mtime = path.stat().st_mtime_ns
    return lambda: path.read_text() == "finished results\n" and path.stat().st_mtime_ns == mtime


def assert_one_line(text: str, prefix: str, message: str) -> None:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix) and message in lines[0], text


def assert_workflow_refuses(workdir, config_text: str, message: str) -> None:
    """Run the workflow on a config; it must exit non-zero with one line, having run nothing."""
    bad = workdir.parent / f"{workdir.name}-bad.yaml"
    bad.write_text(config_text)
    proc = snakemake(workdir, configfile=bad)
    assert proc.returncode != 0
    # Before it, Snakemake's own first line: which workflow profile it loaded.
    header, *rest = proc.stderr.splitlines()
    assert header.startswith("Using workflow specific profile"), proc.stderr
    assert_one_line("\n".join(rest), "config error: ", message)
    assert not list(workdir.glob("results/*/data.npz")), "a job ran"


@pytest.mark.parametrize("config_text,message", CONFIG_CASES)
def test_config_load_names_the_problem(config_text, message, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(config_text)
    with pytest.raises(config.ConfigError) as e:
        config.load(path, SCHEMA)
    assert_one_line(str(e.value), "", message)


# Through Snakemake, one case per way a config is checked (the schema, the checks in Python,
# the experiments' names, the YAML itself): each launch costs seconds, and every case shares
# common.smk's one-line report.
WORKFLOW_CASES = [
    case
    for case in CONFIG_CASES
    if case.id
    in {
        "unknown-top-level-key",
        "model-vs-data",
        "colliding-experiment-names",
        "duplicate-experiment-name",
    }
]


@pytest.mark.parametrize("config_text,message", WORKFLOW_CASES)
def test_workflow_refuses_bad_config(config_text, message, tmp_path):
    untouched = finished_file(tmp_path / "results" / "tiny" / "metrics.csv")
    assert_workflow_refuses(tmp_path, config_text, message)
    assert untouched()


def test_more_samples_than_the_dataset_has(monkeypatch):
    # MNIST-1D is generated, so it has no limit: give it one, as a fixed dataset has.
    limited = dataclasses.replace(data.SOURCES["mnist1d"], max_train=300)
    monkeypatch.setitem(data.SOURCES, "mnist1d", limited)
    with pytest.raises(config.ConfigError) as e:
        config.validate(yaml.safe_load(tiny_with(f"{EXP}.dataset.n_train", 400)), SCHEMA)
    assert_one_line(
        str(e.value),
        "config.experiments.tiny.dataset.n_train",
        "400 exceeds the 300 samples that mnist1d provides",
    )


@pytest.mark.parametrize(
    "blocker,message",
    [
        ("results", "results folder results exists but is not a directory"),
        ("results/tiny", "results folder results/tiny exists but is not a directory"),
    ],
)
def test_results_folder_that_is_a_file(blocker, message, tmp_path):
    untouched = finished_file(tmp_path / blocker)
    assert_workflow_refuses(tmp_path, TINY.read_text(), message)
    assert untouched()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions")
def test_read_only_results_folder(tmp_path):
    untouched = finished_file(tmp_path / "results" / "other" / "metrics.csv")
    (tmp_path / "results").chmod(0o555)
    try:
        assert_workflow_refuses(tmp_path, TINY.read_text(), "is not writable")
    finally:
        (tmp_path / "results").chmod(0o755)
    assert untouched()


def _missing(path):
    """Leave the dataset file unwritten."""


def _not_a_zip(path):
    """Write bytes that are no .npz at all."""
    path.write_bytes(b"not an npz file")


def _no_arrays(path):
    """Write a valid .npz that lacks most of a prepared dataset's arrays."""
    np.savez(path, x_train=np.zeros((2, 2)))


@pytest.mark.parametrize(
    "make_data,message",
    [
        (_missing, "prepared dataset not found"),
        (_not_a_zip, "is corrupt"),
        (_no_arrays, "is corrupt"),
    ],
)
def test_train_refuses_bad_dataset_file(make_data, message, tmp_path, capsys):
    exp = config.validate(TINY_CONFIG, SCHEMA)["experiments"]["tiny"]
    spec = config.rerun_key(config.group_spec("tiny", exp, "width~4_norm~none"))
    path = tmp_path / "data.npz"
    make_data(path)
    out = tmp_path / "results" / "tiny" / "groups" / "width~4_norm~none.parquet"
    untouched = finished_file(out)
    code = cli.main(["train", "--spec", spec, "--data", str(path), "--out", str(out)])
    assert code != 0 and untouched()
    assert_one_line(capsys.readouterr().err, "doubledescent train: error: ", message)


def test_train_refuses_a_spec_that_is_not_json(tmp_path, capsys):
    out = tmp_path / "group.parquet"
    untouched = finished_file(out)
    code = cli.main(["train", "--spec", "{width: 4", "--data", "x.npz", "--out", str(out)])
    assert code != 0 and untouched()
    assert_one_line(capsys.readouterr().err, "doubledescent train: error: ", "Expecting")


# Expected problems are one line; anything else is a bug and keeps its traceback.


def tiny_train_argv(tmp_path, *extra) -> list[str]:
    """`train` of the tiny config's smallest group on a prepared dataset in tmp_path."""
    exp = config.validate(TINY_CONFIG, SCHEMA)["experiments"]["tiny"]
    spec = config.rerun_key(config.group_spec("tiny", exp, "width~4_norm~none"))
    data.save(data.build(exp["dataset"]), tmp_path / "data.npz")
    out = str(tmp_path / "group.parquet")
    return ["train", "--spec", spec, "--data", str(tmp_path / "data.npz"), "--out", out, *extra]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_device_is_one_line(tmp_path, capsys):
    code = cli.main(tiny_train_argv(tmp_path, "--device", "cuda"))
    assert code == 1
    assert_one_line(
        capsys.readouterr().err, "doubledescent train: error: ", "torch sees no CUDA device"
    )


def test_metrics_table_that_is_missing_is_one_line(tmp_path, capsys):
    argv = ["summarize", "--metrics", str(tmp_path / "no.parquet"), "--tol", "0.01"]
    assert cli.main([*argv, "--out", str(tmp_path / "s.csv")]) == 1
    assert_one_line(capsys.readouterr().err, "doubledescent summarize: error: ", "not found")


def test_a_bug_inside_training_keeps_its_traceback(tmp_path):
    """A ValueError from deep inside a step (here injected into the optimizer's update, as a
    shape mismatch in torch would raise it) is no user error: the CLI must not shorten it."""
    argv = tiny_train_argv(tmp_path)
    code = (
        "import sys\n"
        "from doubledescent import cli, optim\n"
        "def broken(self, *a, **k):\n"
        "    raise ValueError('injected bug in the update')\n"
        "optim.SGD.step = broken\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("Traceback (most recent call last):"), proc.stderr
    assert "in train_step" in proc.stderr and "in broken" in proc.stderr
    assert proc.stderr.rstrip().endswith("ValueError: injected bug in the update")
    assert not (tmp_path / "group.parquet").exists()


def test_a_bug_propagates_out_of_main(tmp_path, monkeypatch):
    from doubledescent import train

    def broken(*args, **kwargs):
        raise RuntimeError("injected bug")

    monkeypatch.setattr(train, "train_group", broken)
    with pytest.raises(RuntimeError, match="injected bug"):
        cli.main(tiny_train_argv(tmp_path))


@pytest.mark.parametrize(
    "make_table,message",
    [
        (lambda path: None, "group table not found"),
        (lambda path: path.write_bytes(b"PAR1 cut short"), "is not a readable parquet table"),
    ],
)
def test_collect_refuses_a_missing_or_damaged_group_table(make_table, message, tmp_path, capsys):
    group = tmp_path / "groups" / "width~4_norm~none.parquet"
    group.parent.mkdir()
    make_table(group)
    out = tmp_path / "metrics.parquet"
    untouched = finished_file(out)
    argv = ["collect", str(group), "--parquet", str(out), "--csv", str(tmp_path / "m.csv")]
    assert cli.main(argv) == 1
    assert untouched()
    assert_one_line(capsys.readouterr().err, "doubledescent collect: error: ", message)

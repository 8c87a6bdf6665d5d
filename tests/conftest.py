"""Shared fixtures and helpers: the repository's paths, a small MNIST-1D dataset, and the
workflow run on the tiny config, as a user runs it."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from doubledescent import config, data, results, warm
from doubledescent.specs import TrainingSettings

# One torch thread per pytest-xdist worker, as each training job has: more workers than
# cores, and a second thread in one would spin waiting for a core another worker holds
# (a resnet18 equivalence test took 103 s so, under a second with one thread).
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
TINY = REPO / "tests" / "configs" / "tiny.yaml"
SAMPLEWISE = REPO / "tests" / "configs" / "tiny_samplewise.yaml"
# The tiny config's table: the target of tests that read no figure (each figure is a job).
TINY_TABLE = "results/tiny/metrics.parquet"


def snakemake_cmd(workdir, *args, configfile=TINY) -> list[str]:
    """The repository's workflow, run in `workdir` so results land there, not in the repo."""
    cmd = [
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
        # After the args: --configfile takes every word up to the next option.
        "--configfile",
        str(configfile),
    ]
    if not any(a.startswith(("--profile", "--cores")) for a in args):
        cmd += ["--cores", "2"]
    return cmd


def smaller_tiny(folder: Path, **changes) -> Path:
    """The tiny config with `changes` to its experiment (fewer widths or regularizers, where a
    test needs only a few groups), written to `folder`."""
    cfg = yaml.safe_load(TINY.read_text())
    cfg["experiments"]["tiny"].update(changes)
    path = folder / "smaller_tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def sigint_as_in_a_terminal() -> None:
    """A child's preexec_fn: SIGINT back to its default, as in a terminal. A suite started in
    the background by a non-interactive shell inherits SIGINT ignored, and Python keeps it
    so, and then Ctrl-C (a test's SIGINT) would stop nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def poll_until(done, bound: float, failure, every: float = 0.01) -> None:
    """Until `done()` holds (an event); fail with `failure()` if it has not after `bound`
    seconds, far more than any machine takes (then it will not come: a test must not hang)."""
    deadline = time.monotonic() + bound
    while not done():
        assert time.monotonic() < deadline, failure()
        time.sleep(every)


def wait_until(done, run: subprocess.Popen, log: Path, bound: float = 300) -> None:
    """Until `done()` holds (an event the workflow writes); fail if Snakemake ends first, or
    after `bound` seconds."""
    wait_while_running(done, run, lambda: log.read_text()[-3000:], bound)


def wait_while_running(done, run: subprocess.Popen, output, bound: float = 300) -> None:
    """Until `done()` holds (an event `run` brings about); fail with `output()` if `run`
    ends first, or after `bound` seconds (ending `run` then, so a pipe's output is whole)."""

    def happened() -> bool:
        if done():
            return True
        assert run.poll() is None, output()
        return False

    def timed_out() -> str:
        run.kill()
        run.wait()
        return f"no event in {bound} s: {output()}"

    poll_until(happened, bound, timed_out, 0.05)


def snakemake(
    workdir, *args, configfile=TINY, timeout=300, env=None
) -> subprocess.CompletedProcess:
    """Run the workflow in `workdir` (not copied: --directory keeps each test's results apart),
    in this process's environment or `env`."""
    return subprocess.run(
        snakemake_cmd(workdir, *args, configfile=configfile),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def without_warm_server() -> dict:
    """This process's environment without the suite's warm-start server (`pytest_configure`):
    a workflow run in it starts its own, or none where it runs no job locally."""
    return {k: v for k, v in os.environ.items() if k != warm.ENV}


def report(workdir, *targets, configfile=TINY) -> dict[str, dict]:
    """Build `snakemake --report` of a finished run (of its `targets`, or all); its entries:
    path -> name, caption, ..."""
    proc = snakemake(workdir, "--report", "report.html", *targets, configfile=configfile)
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = (Path(workdir) / "report.html").read_text()
    entries = re.search(
        r'<script id="results">\s*var results = (\{.*?\});?\s*</script>', html, re.S
    )
    return json.loads(entries[1])


def check_tiny_metrics(workdir, configfile=TINY) -> pd.DataFrame:
    """Assert what any finished run of the tiny config (or a `smaller_tiny`) must have
    written; return its table."""
    cfg = yaml.safe_load(Path(configfile).read_text())["experiments"]["tiny"]
    df = pd.read_parquet(Path(workdir) / "results" / "tiny" / "metrics.parquet")
    assert list(df.columns[: len(results.KEY_COLUMNS)]) == results.KEY_COLUMNS
    n_runs = len(cfg["widths"]) * len(cfg["regularizers"]) * len(cfg["seeds"])
    assert df.run_id.nunique() == n_runs
    assert len(df) == n_runs * 3  # eval epochs 1, 2, 6
    assert sorted(df.epoch.unique()) == [1, 2, 6]
    for col in ["train_error", "train_error_clean", "test_error", "noisy_fit"]:
        assert df[col].between(0, 1).all(), col
    assert (df.train_loss > 0).all() and (df.test_loss > 0).all()
    ds = cfg["dataset"]
    noisy = data.noisy_label_error(df.test_error, ds["label_noise"], 10, "random_class")
    np.testing.assert_allclose(df.test_error_noisy, noisy)
    assert set(df.regularizer) == set(cfg["regularizers"])
    return df


def training_settings(**changes) -> TrainingSettings:
    """The schema's default training settings, with `changes` (an epochs budget unless they
    set `epochs=None` and `steps`)."""
    exp = {"dataset": {"name": "mnist1d"}, "model": {"name": "mlp"}, "widths": [1]}
    exp |= {"regularizers": {"none": {}}, "seeds": [0]}
    section = config.validate({"experiments": {"e": exp}}, SCHEMA)["experiments"]["e"]["training"]
    return dataclasses.replace(TrainingSettings.from_dict(section), **changes)


def mnist1d_spec(**overrides) -> dict:
    spec = {
        "name": "mnist1d",
        "n_train": 300,
        "n_test": 200,
        "label_noise": 0.2,
        "noise_mode": "random_class",
        "seed": 7,
    }
    return {**spec, **overrides}


def finished_workflow(tmp_path_factory, configfile, *targets) -> Path:
    """The workflow's folder after a run of `configfile` (its `targets`, or all)."""
    workdir = tmp_path_factory.mktemp(configfile.stem)
    proc = snakemake(workdir, *targets, configfile=configfile)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir


def pytest_collection_modifyitems(items):
    """The SLURM tests first: they mostly wait on the scheduler's polling, which the other
    worker's tests fill; run last, that wait was the suite's idle tail (pytest-xdist hands
    out modules in this order)."""
    items.sort(key=lambda item: item.get_closest_marker("slurm") is None)


def pytest_configure(config):
    """One warm-start server for the suite, named in the environment that the workers and
    every workflow the tests run inherit, so each hands its steps to it (the Snakefile
    starts a server only where none is named): ~5 s of imports once, not once per Snakemake
    run. Started here, in pytest's first process: before pytest-xdist starts its workers."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        warm.start(True)


def pytest_unconfigure(config):
    warm.stop()  # a no-op in a worker, which started none


# The tiny pipelines, run once per session and shared by the tests that read their outputs
# (tests must not write into them). Each is read by one module's tests (test_pipeline.py,
# test_sample_wise.py): pytest-xdist's `--dist loadfile` gives a module to one worker, so it
# runs once.
@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The workflow's folder after a run of the tiny config."""
    return finished_workflow(tmp_path_factory, TINY)


@pytest.fixture(scope="session")
def samplewise_run(tmp_path_factory) -> Path:
    """tiny_samplewise's results folder: two sizes, a weight-decay grid, a validation split.
    Its tables and the two figures the tests read from disk: test_sample_wise.py draws the
    others from its table in the test's process (each figure job is a process of its own)."""
    out = "results/tiny_samplewise"
    files = ["metrics.parquet", "summary.csv", "optimal_regularization.csv"]
    files += ["figures/sample_wise.pdf", "figures/optimal_regularization.pdf"]
    targets = [f"{out}/{f}" for f in files]
    return finished_workflow(tmp_path_factory, SAMPLEWISE, *targets) / out


@pytest.fixture(scope="session")
def small_data() -> data.Arrays:
    return data.build(mnist1d_spec())


def crash_on_call(monkeypatch, module, name: str, n: int):
    """Make `module.name` raise KeyboardInterrupt on its `n`-th call (a crash mid-training);
    return the original, to put back."""
    real, calls = getattr(module, name), []

    def crashing(*args):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(module, name, crashing)
    return real

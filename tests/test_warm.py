"""Warm starts (doubledescent.warm): a step handed to the server runs in a child of it, with
the client's streams, exit code and signals, and the same results as a step run on its own."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from doubledescent import config, progress, status, warm
from tests.conftest import mnist1d_spec
from tests.test_resume import paused_after_a_checkpoint, spec, wait_for


@pytest.fixture
def server():
    """A server started as the Snakefile starts one; the environment its clients get."""
    warm.start(True)
    path = Path(os.environ[warm.ENV])
    try:
        while not path.exists():  # the socket appears once the server has imported all
            assert warm._server.poll() is None, "the server ended before it was ready"
            time.sleep(0.01)
        yield dict(os.environ)
    finally:
        warm.stop()


def cold_env() -> dict:
    return {k: v for k, v in os.environ.items() if k != warm.ENV}


def step(*args, env) -> subprocess.CompletedProcess:
    """`python -m doubledescent ...`, with the modules its own interpreter imports logged."""
    cmd = [sys.executable, "-X", "importtime", "-m", "doubledescent", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def imported(stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if "|" in line}


def test_a_forked_step_writes_what_a_fresh_process_does_without_importing_it(server, tmp_path):
    args = ["data", "--spec", json.dumps(mnist1d_spec()), "--out"]
    warm_step = step(*args, str(tmp_path / "warm.npz"), env=server)
    cold_step = step(*args, str(tmp_path / "cold.npz"), env=cold_env())
    assert warm_step.returncode == cold_step.returncode == 0, warm_step.stderr
    # The client only handed the step over: numpy (and torch) were never imported in it.
    assert "numpy" in imported(cold_step.stderr)
    assert not {"numpy", "torch"} & imported(warm_step.stderr)
    with np.load(tmp_path / "warm.npz") as a, np.load(tmp_path / "cold.npz") as b:
        assert a.files == b.files
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name])


def test_exit_codes_and_messages_reach_the_client(server, tmp_path):
    missing = step(
        "plot", "--figure", "model_wise", "--metrics", str(tmp_path / "none.parquet"),
        "--spec", "{}", "--out", str(tmp_path / "f.png"), env=server,
    )  # fmt: skip
    assert missing.returncode == 1
    assert missing.stderr.splitlines()[-1] == (
        f"doubledescent plot: error: metrics table not found: {tmp_path / 'none.parquet'}"
    )
    unknown = step("no-such-step", env=server)
    assert unknown.returncode == 2 and "invalid choice: 'no-such-step'" in unknown.stderr


def paused_training(tmp_path, env) -> tuple[subprocess.Popen, int]:
    """A training job handed to the server and paused after its first checkpoint; the
    pid of the process that trains, from its progress record."""
    from doubledescent import data

    data.save(data.build(mnist1d_spec()), tmp_path / "data.npz")
    ckpt = tmp_path / "group.pt"
    cmd = [
        sys.executable, "-m", "doubledescent", "train", "--spec", config.rerun_key(spec()),
        "--data", str(tmp_path / "data.npz"), "--out", str(tmp_path / "group.parquet"),
        "--device", "cpu", "--checkpoint", str(ckpt), "--checkpoint-every", "3",
    ]  # fmt: skip
    env = {**env, **paused_after_a_checkpoint(tmp_path, ckpt)}
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    wait_for(tmp_path / f"{ckpt.name}.paused", job)
    trainer = progress.read(progress.path_for(ckpt))["pid"]
    assert trainer != job.pid  # a child of the server trains, not the client
    return job, trainer


def wait_until_gone(pid: int, bound: float = 120) -> None:
    """Until process `pid` has ended and been reaped (an event); failing only if that has
    not happened after `bound` seconds, far more than any machine takes."""
    deadline = time.monotonic() + bound
    while status.pid_alive(pid):
        if time.monotonic() > deadline:
            pytest.fail(f"process {pid} still runs")
        time.sleep(0.01)


def test_ctrl_c_reaches_the_step_and_the_client_ends_as_it_did(server, tmp_path):
    job, trainer = paused_training(tmp_path, server)
    job.send_signal(signal.SIGINT)
    out = job.communicate(timeout=120)[0].decode()
    # As a training process of its own ends on a Ctrl-C: a KeyboardInterrupt's traceback
    # in its log, then killed by SIGINT, which Snakemake reads as an interrupted job.
    assert job.returncode == -signal.SIGINT
    assert "KeyboardInterrupt" in out
    assert "_pause_if_a_test_asks" in out  # raised in the step, where it waited
    wait_until_gone(trainer)


def test_a_killed_client_stops_its_step(server, tmp_path):
    job, trainer = paused_training(tmp_path, server)
    assert status.pid_alive(trainer)  # training, paused
    job.kill()
    job.wait()
    wait_until_gone(trainer)


def test_the_server_ends_and_cleans_up_when_stopped(server):
    process, folder = warm._server, Path(os.environ[warm.ENV]).parent
    warm.stop()
    assert warm.ENV not in os.environ
    assert process.wait(timeout=120) == 0
    assert not folder.exists()


def test_a_server_stopped_while_it_imports_leaves_nothing_behind():
    warm.start(True)
    process, folder = warm._server, Path(os.environ[warm.ENV]).parent
    warm.stop()  # long before its imports end
    process.wait(timeout=120)
    assert not folder.exists() and warm.ENV not in os.environ


def test_without_a_server_the_step_runs_in_its_own_process(tmp_path):
    env = {**cold_env(), warm.ENV: str(tmp_path / "no-server.sock")}
    alone = step(
        "data", "--spec", json.dumps(mnist1d_spec()), "--out", str(tmp_path / "d.npz"), env=env
    )
    assert alone.returncode == 0, alone.stderr
    assert "numpy" in imported(alone.stderr) and (tmp_path / "d.npz").exists()

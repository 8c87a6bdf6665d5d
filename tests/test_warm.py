"""Warm starts (doubledescent.warm): a step handed to the server runs in a child of it, with
the client's streams, exit code and signals, and the same results as a step run on its own."""

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from doubledescent import checkpoint, config, progress, status, warm
from tests.conftest import (
    TINY,
    TINY_TABLE,
    mnist1d_spec,
    poll_until,
    snakemake_cmd,
    wait_until,
    without_warm_server,
)
from tests.test_resume import paused_after_a_checkpoint, spec, wait_for


def wait_ready(bound: float = 120) -> None:
    """Until the server the environment names has imported all (its socket appears then);
    failing if the server this process started ends first, or after `bound` seconds."""
    path = Path(os.environ[warm.ENV])

    def ready() -> bool:
        if path.exists():
            return True
        assert warm._server is None or warm._server.poll() is None, "the server ended"
        return False

    poll_until(ready, bound, lambda: f"no server at {path} after {bound} s")


@pytest.fixture
def server() -> dict:
    """The suite's server (tests/conftest.py), once ready; the environment its clients get."""
    wait_ready()
    return dict(os.environ)


@pytest.fixture
def own_server(monkeypatch):
    """Room for a test's own server: the suite's is hidden from `warm` meanwhile."""
    monkeypatch.setattr(warm, "_server", None)
    monkeypatch.delenv(warm.ENV)


def step(*args, env) -> subprocess.CompletedProcess:
    """`python -m doubledescent ...`, with the modules its own interpreter imports logged."""
    cmd = [sys.executable, "-X", "importtime", "-m", "doubledescent", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def imported(stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if "|" in line}


def test_a_forked_step_writes_what_a_fresh_process_does_without_importing_it(server, tmp_path):
    args = ["data", "--spec", json.dumps(mnist1d_spec()), "--out"]
    warm_step = step(*args, str(tmp_path / "warm.npz"), env=server)
    cold_step = step(*args, str(tmp_path / "cold.npz"), env=without_warm_server())
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
    poll_until(lambda: not status.pid_alive(pid), bound, lambda: f"process {pid} still runs")


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


def test_the_server_ends_and_cleans_up_when_stopped(own_server):
    warm.start(True)
    wait_ready()
    process, folder = warm._server, Path(os.environ[warm.ENV]).parent
    warm.stop()
    assert warm.ENV not in os.environ
    assert process.wait(timeout=120) == 0
    assert not folder.exists()


def test_a_server_stopped_while_it_imports_leaves_nothing_behind(own_server):
    warm.start(True)
    process, folder = warm._server, Path(os.environ[warm.ENV]).parent
    warm.stop()  # long before its imports end
    process.wait(timeout=120)
    assert not folder.exists() and warm.ENV not in os.environ


def test_without_a_server_the_step_runs_in_its_own_process(tmp_path):
    env = {**without_warm_server(), warm.ENV: str(tmp_path / "no-server.sock")}
    alone = step(
        "data", "--spec", json.dumps(mnist1d_spec()), "--out", str(tmp_path / "d.npz"), env=env
    )
    assert alone.returncode == 0, alone.stderr
    assert "numpy" in imported(alone.stderr) and (tmp_path / "d.npz").exists()


def test_a_local_run_starts_its_own_server_and_its_steps_fork_from_it(tmp_path):
    """As a user runs it (no server named): the Snakefile's server, on one core. Both groups
    pause after a checkpoint; the first is let go once the server is ready, so the second
    starts after that: its trainer is the server's child. The server's folder goes with it."""
    cfg = yaml.safe_load(TINY.read_text())
    cfg["experiments"]["tiny"].update(widths=[4, 16], regularizers={"none": {}})
    cfg["checkpoint_every"] = 3
    configfile = tmp_path / "two_groups.yaml"
    configfile.write_text(yaml.safe_dump(cfg))
    pause = tmp_path / "pause"
    pause.mkdir()
    # A temp folder of this test's, short: a socket's path has a limit that tmp_path may pass.
    temp = Path(tempfile.mkdtemp())
    groups = [f"width~{w}_norm~none.pt" for w in (4, 16)]
    for name in groups:
        (pause / f"{name}.pause").touch()
    env = {**without_warm_server(), checkpoint.PAUSE_ENV: str(pause), "TMPDIR": str(temp)}
    log = tmp_path / "snakemake.log"
    with open(log, "w") as out:
        run = subprocess.Popen(
            snakemake_cmd(tmp_path, "--cores", "1", TINY_TABLE, configfile=configfile),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        paused = [pause / f"{name}.paused" for name in groups]
        wait_until(lambda: any(p.exists() for p in paused), run, log)
        wait_until(lambda: list(temp.glob("doubledescent-*/warm.sock")), run, log)
        first = 0 if paused[0].exists() else 1
        (pause / f"{groups[first]}.pause").unlink()
        wait_until(paused[1 - first].exists, run, log)

        ckpt = tmp_path / "results" / "tiny" / "checkpoints" / groups[1 - first]
        trainer = progress.read(progress.path_for(ckpt))["pid"]
        parent = int(Path(f"/proc/{trainer}/stat").read_text().rsplit(")", 1)[1].split()[1])
        server = Path(f"/proc/{parent}/cmdline").read_text().split("\0")
        assert server[-4:-1] == ["serve", "--socket", str(next(temp.glob("*/warm.sock")))]
    finally:  # a failed check leaves no job paused, nor Snakemake waiting on it
        for name in groups:
            (pause / f"{name}.pause").unlink(missing_ok=True)
    assert run.wait(timeout=300) == 0, log.read_text()[-3000:]
    assert not list(temp.iterdir())
    temp.rmdir()


def test_a_temp_folder_too_long_for_a_socket_puts_it_in_tmp(tmp_path, monkeypatch):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    path = Path(warm._socket_path())
    assert path.parent.parent == Path("/tmp") and path.parent.stat().st_mode & 0o777 == 0o700
    path.parent.rmdir()
    monkeypatch.setattr(warm, "MAX_SOCKET_PATH", 8)  # nowhere short enough: no server
    assert warm._socket_path() is None and not list(deep.iterdir())

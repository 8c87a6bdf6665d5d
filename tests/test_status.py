"""`doubledescent status` on a sweep stopped halfway: done, running, stopped and pending
groups, and the model-wise figure from the finished table plus the rows a stopped group has
checkpointed."""

import datetime as dt
import os
import platform
import re
import signal
import subprocess
import sys

import torch
import yaml

from doubledescent import checkpoint
from doubledescent import status as status_module
from tests.conftest import (
    REPO,
    TINY,
    sigint_as_in_a_terminal,
    snakemake,
    snakemake_cmd,
    wait_until,
)

DONE, PENDING, RUNNING = "width~4_norm~none", "width~8_norm~none", "width~256_norm~none"
EPOCHS = 60  # the running group is stopped at its first checkpoint, epoch 20


def sweep(tmp_path):
    """Three groups, checkpointing every 20 of their epochs."""
    cfg = yaml.safe_load(TINY.read_text())
    exp = cfg["experiments"]["tiny"]
    exp.update(widths=[4, 8, 256], regularizers={"none": {}})
    exp["training"].update(epochs=EPOCHS, eval_epochs=4)  # evaluated at epochs 1, 4, 15, 60
    cfg.update(checkpoint_every=20, progress_every=0.05)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def status(tmp_path, config) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "doubledescent", "status", "--configfile", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_status_of_a_sweep_stopped_halfway(tmp_path):
    config = sweep(tmp_path)
    results = tmp_path / "results" / "tiny"
    assert "0 done, 0 running, 0 stopped, 3 pending\n" in status(tmp_path, config)
    target = f"results/tiny/groups/{DONE}.parquet"  # after an option: --configfile takes a list
    first = snakemake(tmp_path, "--cores", "2", target, configfile=config)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "1 done, 0 running, 0 stopped, 2 pending\n" in status(tmp_path, config)

    # One core: the costliest group (width 256) starts first and pauses after its first
    # checkpoint (checkpoint.PAUSE_ENV), where the test stops the sweep, on any machine.
    ckpt = results / "checkpoints" / f"{RUNNING}.pt"
    pause = tmp_path / "pause"
    pause.mkdir()
    (pause / f"{ckpt.name}.pause").touch()
    log = tmp_path / "snakemake.log"
    with open(log, "w") as out:
        run = subprocess.Popen(
            snakemake_cmd(tmp_path, "--cores", "1", configfile=config),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=sigint_as_in_a_terminal,
            env={**os.environ, checkpoint.PAUSE_ENV: str(pause)},
        )
    wait_until((pause / f"{ckpt.name}.paused").exists, run, log)
    # Paused, its job is alive: running.
    assert "1 done, 1 running, 0 stopped, 1 pending\n" in status(tmp_path, config)
    os.killpg(run.pid, signal.SIGINT)
    run.wait(timeout=120)

    out = status(tmp_path, config)
    assert "tiny: 3 groups: 1 done, 0 running, 1 stopped, 1 pending" in out, out
    # The progress as of the checkpoint: its epoch, and an ETA from the epochs before it.
    stopped = re.search(rf"stopped  {RUNNING}  progress: epoch ([\d.]+)/{EPOCHS} .* eta \d", out)
    assert stopped and float(stopped[1]) == 20, out
    assert "a rerun resumes it" in out, out
    assert re.search(rf"done +{DONE}$", out, re.M) and re.search(rf"pending +{PENDING}$", out, re.M)
    # The figure holds the finished runs at their last epoch and the stopped group's runs
    # at the last evaluation its checkpoint holds.
    rows = torch.load(ckpt, weights_only=False)["progress"]["rows"]
    last = max(r["epoch"] for r in rows)
    assert last == 15 and f"(4 runs, at epochs {last}-{EPOCHS} of {EPOCHS})" in out, out
    assert (results / "status" / "model_wise.png").stat().st_size > 0


def test_a_progress_record_tells_a_live_job_from_a_stopped_one():
    """On this host by the writer's process; from another (a cluster node) by whether its
    reports keep coming, three intervals and some slack."""
    now = dt.datetime.now(dt.UTC)
    record = {
        "host": platform.node(),
        "pid": os.getpid(),
        "every": 60.0,
        "updated": now.isoformat(),
    }
    assert status_module.writer_alive(record, now)
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    assert not status_module.writer_alive({**record, "pid": int(ended.stdout)}, now)
    elsewhere = {**record, "host": platform.node() + "-another-node", "pid": 1}
    late = 3 * 60 + status_module.REPORT_SLACK
    assert status_module.writer_alive(elsewhere, now + dt.timedelta(seconds=late - 1))
    assert not status_module.writer_alive(elsewhere, now + dt.timedelta(seconds=late + 1))
    # A record from before jobs wrote who they are: running, as status said then.
    assert status_module.writer_alive({"updated": now.isoformat()}, now + dt.timedelta(days=1))

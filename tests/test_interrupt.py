"""Stopping snakemake mid-sweep loses nothing: a rerun finishes and retrains nothing done.

The test stops the sweep at a known point, whatever the machine's speed: the wide group's job
pauses after its first checkpoint (checkpoint.PAUSE_ENV) until the test lets it go on."""

import os
import re
import signal
import subprocess

import pandas as pd
import pytest
import yaml

from doubledescent import checkpoint
from tests.conftest import (
    TINY,
    TINY_TABLE,
    sigint_as_in_a_terminal,
    snakemake,
    snakemake_cmd,
    wait_until,
)

EPOCHS = 60


def two_groups(tmp_path):
    """The tiny config with two groups, checkpointing every 20 epochs."""
    cfg = yaml.safe_load(TINY.read_text())
    exp = cfg["experiments"]["tiny"]
    exp["widths"] = [4, 16]
    exp["regularizers"] = {"none": {}}
    exp["training"].update(epochs=EPOCHS, eval_epochs=4)
    cfg["checkpoint_every"] = 20
    path = tmp_path / "two_groups.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_then_rerun_finishes_and_keeps_finished_groups(tmp_path, sig):
    """Ctrl-C (SIGINT to the process group) kills the running job, which then resumes from
    its checkpoint; SIGTERM lets running jobs finish. Either way nothing finished is redone."""
    config = two_groups(tmp_path)
    results = tmp_path / "results" / "tiny"
    small, wide = (results / "groups" / f"width~{w}_norm~none.parquet" for w in (4, 16))
    pause = tmp_path / "pause"
    pause.mkdir()
    release = pause / "width~16_norm~none.pt.pause"
    release.touch()
    log = tmp_path / "snakemake.log"
    with open(log, "w") as out:
        run = subprocess.Popen(
            snakemake_cmd(tmp_path, configfile=config),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=sigint_as_in_a_terminal,
            env={**os.environ, checkpoint.PAUSE_ENV: str(pause)},
        )
    # Stop once Snakemake has recorded data + the small group as done and the wide one has
    # paused after its first checkpoint: a job whose output exists but is not yet recorded
    # is rightly redone.
    paused = pause / "width~16_norm~none.pt.paused"
    wait_until(
        lambda: paused.exists() and re.search(r"\b2 of \d+ steps", log.read_text()), run, log
    )
    assert small.exists() and not wide.exists()
    finished = small.stat().st_mtime_ns
    if sig == signal.SIGINT:
        os.killpg(run.pid, sig)
    else:  # once Snakemake has taken it in, let the running job finish
        run.send_signal(sig)
        wait_until(lambda: "Will exit after finishing" in log.read_text(), run, log)
        release.unlink()
    assert run.wait(timeout=120) != 0

    dry = snakemake(tmp_path, "-n", "--quiet", "rules", configfile=config).stdout
    assert ("train_group" in dry) == (sig == signal.SIGINT), dry
    rerun = snakemake(tmp_path, TINY_TABLE, configfile=config)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert small.stat().st_mtime_ns == finished  # not retrained
    job_log = (results / "logs" / "train" / "width~16_norm~none.log").read_text()
    if sig == signal.SIGINT:
        assert "resuming from the checkpoint at step 160 (epoch 20)" in job_log  # 8 steps an epoch
    table = pd.read_parquet(results / "metrics.parquet")
    assert table.run_id.nunique() == 4 and table.epoch.max() == EPOCHS

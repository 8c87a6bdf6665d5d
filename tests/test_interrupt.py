"""Stopping snakemake mid-sweep loses nothing: a rerun finishes and retrains nothing done."""

import os
import re
import signal
import subprocess
import time

import pandas as pd
import pytest
import yaml

from tests.conftest import TINY, snakemake, snakemake_cmd


def slow_tiny(tmp_path):
    """The tiny config with one long group, so the sweep can be stopped halfway."""
    cfg = yaml.safe_load(TINY.read_text())
    exp = cfg["experiments"]["tiny"]
    exp["widths"] = [4, 256]
    exp["regularizers"] = {"none": {}}
    exp["training"].update(epochs=1500, eval_epochs=4)
    cfg["checkpoint_every"] = 20
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_then_rerun_finishes_and_keeps_finished_groups(tmp_path, sig):
    """Ctrl-C (SIGINT to the process group) kills the running job, which then resumes from
    its checkpoint; SIGTERM lets running jobs finish. Either way nothing finished is redone."""
    config = slow_tiny(tmp_path)
    groups = tmp_path / "results" / "tiny" / "groups"
    small, big = groups / "width~4_norm~none.parquet", groups / "width~256_norm~none.parquet"
    checkpoint = tmp_path / "results" / "tiny" / "checkpoints" / "width~256_norm~none.pt"
    log = tmp_path / "snakemake.log"
    with open(log, "w") as out:
        # SIGINT back to its default in the child, as in a terminal: a suite started in the
        # background by a non-interactive shell inherits SIGINT ignored, and Python keeps it so.
        run = subprocess.Popen(
            snakemake_cmd(tmp_path, configfile=config),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    # Stop once Snakemake has recorded data + the small group as done and the big one
    # has a checkpoint: a job whose output exists but is not yet recorded is rightly redone.
    deadline = time.time() + 240
    while time.time() < deadline and not (
        re.search(r"\b2 of \d+ steps", log.read_text()) and checkpoint.exists()
    ):
        time.sleep(0.2)
    assert run.poll() is None and small.exists() and not big.exists()
    finished = small.stat().st_mtime_ns
    os.killpg(run.pid, sig) if sig == signal.SIGINT else run.send_signal(sig)
    assert run.wait(timeout=120) != 0

    dry = snakemake(tmp_path, "-n", "--quiet", "rules", configfile=config).stdout
    assert ("train_group" in dry) == (sig == signal.SIGINT), dry
    rerun = snakemake(tmp_path, configfile=config)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert small.stat().st_mtime_ns == finished  # not retrained
    job_log = tmp_path / "results" / "tiny" / "logs" / "train" / "width~256_norm~none.log"
    if sig == signal.SIGINT:
        assert "resuming from the checkpoint" in job_log.read_text()
    table = pd.read_parquet(tmp_path / "results" / "tiny" / "metrics.parquet")
    assert table.run_id.nunique() == 4 and table.epoch.max() == 1500

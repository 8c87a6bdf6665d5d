"""Stopping snakemake mid-sweep loses nothing: a rerun finishes and retrains nothing done."""

import signal
import subprocess
import time

import pandas as pd
import yaml

from tests.conftest import TINY, snakemake, snakemake_cmd


def slow_tiny(tmp_path):
    """The tiny config with one long group, so the sweep can be stopped halfway."""
    cfg = yaml.safe_load(TINY.read_text())
    exp = cfg["experiments"]["tiny"]
    exp["widths"] = [4, 512]
    exp["regularizers"] = {"none": {}}
    exp["training"].update(epochs=400, eval_epochs=4)
    cfg["checkpoint_every"] = 5
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_sigterm_then_rerun_finishes_and_keeps_finished_groups(tmp_path):
    config = slow_tiny(tmp_path)
    groups = tmp_path / "results" / "tiny" / "groups"
    small, big = groups / "width~4_norm~none.parquet", groups / "width~512_norm~none.parquet"
    checkpoint = tmp_path / "results" / "tiny" / "checkpoints" / "width~512_norm~none.pt"
    run = subprocess.Popen(snakemake_cmd(tmp_path, configfile=config),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (small.exists() and checkpoint.exists()) and time.time() < deadline:
        time.sleep(0.2)
    assert run.poll() is None and small.exists() and not big.exists()
    finished = small.stat().st_mtime_ns
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) != 0

    dry = snakemake(tmp_path, "-n", configfile=config).stdout
    assert "width~512_norm~none" in dry and "width~4_norm~none.parquet" not in dry.split(
        "Job stats")[-1].split("collect")[0]
    rerun = snakemake(tmp_path, configfile=config)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert small.stat().st_mtime_ns == finished  # not retrained
    log = (tmp_path / "results" / "tiny" / "logs" / "train" / "width~512_norm~none.log")
    assert "resuming from the checkpoint" in log.read_text()
    table = pd.read_parquet(tmp_path / "results" / "tiny" / "metrics.parquet")
    assert table.run_id.nunique() == 4 and table.epoch.max() == 400

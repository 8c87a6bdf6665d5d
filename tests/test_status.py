"""`doubledescent status` on a sweep stopped halfway: done, running and pending groups, and the
model-wise figure from the finished table plus the rows a running group has checkpointed."""

import os
import re
import signal
import subprocess
import sys
import time

import torch
import yaml

from doubledescent import progress
from tests.conftest import REPO, TINY, snakemake, snakemake_cmd

DONE, PENDING, RUNNING = "width~4_norm~none", "width~8_norm~none", "width~256_norm~none"


def sweep(tmp_path):
    """Three groups; the widest trains long enough to be stopped in the middle."""
    cfg = yaml.safe_load(TINY.read_text())
    exp = cfg["experiments"]["tiny"]
    exp.update(widths=[4, 8, 256], regularizers={"none": {}})
    exp["training"].update(epochs=1500, eval_epochs=4)
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
    assert "0 done, 0 running, 3 pending\n" in status(tmp_path, config)
    target = f"results/tiny/groups/{DONE}.parquet"  # after an option: --configfile takes a list
    first = snakemake(tmp_path, "--cores", "2", target, configfile=config)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "1 done, 0 running, 2 pending\n" in status(tmp_path, config)

    # One core: the costliest group (width 256) starts first, the other waits.
    ckpt = results / "checkpoints" / f"{RUNNING}.pt"
    record = progress.path_for(ckpt)
    run = subprocess.Popen(
        snakemake_cmd(tmp_path, "--cores", "1", configfile=config),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline and not (
        ckpt.exists() and (progress.read(record) or {}).get("eta") is not None
    ):
        time.sleep(0.2)
    assert run.poll() is None, "the sweep ended before it could be stopped"
    os.killpg(run.pid, signal.SIGINT)
    run.wait(timeout=120)

    out = status(tmp_path, config)
    assert "tiny: 3 groups: 1 done, 1 running, 1 pending" in out, out
    running = re.search(rf"running  {RUNNING}  progress: epoch ([\d.]+)/1500 .* eta (\S+)", out)
    assert running and 0 < float(running[1]) < 1500, out
    assert re.search(rf"done +{DONE}$", out, re.M) and re.search(rf"pending +{PENDING}$", out, re.M)
    # The figure holds the finished runs at their last epoch and the stopped group's runs
    # at the last evaluation its checkpoint holds.
    rows = torch.load(ckpt, weights_only=False)["progress"]["rows"]
    last = max(r["epoch"] for r in rows)
    assert f"(4 runs, at epochs {last}-1500 of 1500)" in out, out
    assert (results / "status" / "model_wise.png").stat().st_size > 0
    log = (results / "logs" / "train" / f"{RUNNING}.log").read_text()
    assert re.search(r"progress: epoch [\d.]+/1500  elapsed \S+  eta \d", log), log

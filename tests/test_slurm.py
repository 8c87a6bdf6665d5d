"""The tiny workflow through the SLURM executor, on a single-node SLURM cluster on localhost.

The cluster is started by tests/slurm/start-local-slurm.sh (root; it installs slurm-wlm and
munge with apt where they are missing), and exactly the daemons it started are stopped.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import (
    REPO,
    check_tiny_metrics,
    smaller_tiny,
    snakemake,
    without_warm_server,
)

pytestmark = pytest.mark.slurm

START = REPO / "tests" / "slurm" / "start-local-slurm.sh"
TEMPLATE = REPO / "tests" / "slurm" / "slurm.conf"
CONF = Path("/etc/slurm/slurm.conf")  # where the script puts it (see its header)
PROFILE = REPO / "profiles" / "slurm"


def _gone(pid: int) -> bool:
    """Whether a process has exited (a zombie counts: no init reaps daemons in containers)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def stop(pids: dict[str, int]) -> None:
    """Stop the given daemons, last started first, and wait until each has exited."""
    for pid in reversed(list(pids.values())):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 30
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.2)


def remove_conf() -> None:
    """Remove the config the script wrote, and no other.

    Left behind, with no controller to answer, it costs every later Snakemake start ~10 s:
    the SLURM plugin runs `scontrol show config` when it is imported.
    """
    marker = TEMPLATE.read_text().splitlines()[0]
    if CONF.exists() and CONF.read_text().splitlines()[:1] == [marker]:
        CONF.unlink()


def _started(stdout: str) -> dict[str, int]:
    """The script's "name pid" lines, as {name: pid}."""
    return {name: int(pid) for name, pid in (line.split() for line in stdout.splitlines())}


@pytest.fixture(scope="module")
def local_slurm():
    """A running single-node SLURM cluster, or a skip saying why there can't be one."""
    pytest.importorskip(
        "snakemake_executor_plugin_slurm",
        reason="needs the 'slurm' extra: pip install -e '.[slurm]'",
    )
    if os.geteuid() != 0:
        pytest.skip("starting a local SLURM cluster needs root")
    if not (shutil.which("slurmctld") or shutil.which("apt-get")):
        pytest.skip("SLURM is not installed and apt-get is not available to install it")
    # Not pytest's tmp_path: that is private to root, and slurmctld runs as the slurm user.
    state = tempfile.mkdtemp(prefix="local-slurm-")
    proc = subprocess.run(
        ["bash", str(START)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "LOCAL_SLURM_STATE": state},
        stdin=subprocess.DEVNULL,
    )
    pids = _started(proc.stdout)
    try:
        if proc.returncode != 0:
            reason = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            pytest.skip(f"local SLURM cluster could not be started: {reason}")
        yield
    finally:
        stop(pids)
        remove_conf()
        shutil.rmtree(state, ignore_errors=True)


def test_tiny_workflow_on_slurm(local_slurm, tmp_path):
    # Two groups, and of the figures one: each stage waits on the plugin's polling.
    configfile = smaller_tiny(
        tmp_path, widths=[4, 32], regularizers={"none": {}, "l2": {"weight_decay": 1e-3}}
    )
    out = "results/tiny"
    targets = [f"{out}/metrics.parquet", f"{out}/provenance.json", f"{out}/figures/model_wise.pdf"]
    # The plugin picks sacct wherever it is installed; this cluster has no accounting, so
    # job status must come from squeue, as on any such cluster (see the profile's comment).
    # Without the suite's warm-start server: its socket is reachable from this one node,
    # and a real cluster's jobs each run in a process of their own.
    proc = snakemake(
        tmp_path,
        *("--profile", str(PROFILE), "--slurm-status-command", "squeue", *targets),
        configfile=configfile,
        timeout=600,
        env=without_warm_server(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The data job and each of the 2 training groups really went through SLURM.
    assert proc.stderr.count("has been submitted with SLURM jobid") == 3
    df = check_tiny_metrics(tmp_path, configfile)
    assert df["hostname"].notna().all()
    prov = json.loads((tmp_path / out / "provenance.json").read_text())
    assert prov["training"]["hostnames"] and prov["training"]["runs"] == df.run_id.nunique()
    assert (tmp_path / out / "figures" / "model_wise.pdf").read_bytes().startswith(b"%PDF")

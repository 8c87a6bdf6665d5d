"""Plain `snakemake --cores N` in a clone loads profiles/default: a failed group shows its
one-line error on the console and the other groups still finish (keep-going)."""

import os
import shutil
import subprocess

from tests.conftest import REPO, smaller_tiny

# What a run needs from a clone; the package itself comes from the environment.
WORKFLOW = ["Snakefile", "config.yaml", "workflow", "profiles"]
BROKEN = "width~32_norm~none"


def test_default_profile_loads_without_an_option(tmp_path):
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in WORKFLOW:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, clone / name)
    # Four groups: the broken one and three that finish.
    config = smaller_tiny(
        tmp_path, widths=[4, 32], regularizers={"none": {}, "bn": {"batchnorm": True}}
    )
    ckpt = clone / "results" / "tiny" / "checkpoints" / f"{BROKEN}.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"not a checkpoint")
    proc = subprocess.run(
        ["snakemake", "--cores", "2", "--configfile", str(config)],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert proc.returncode != 0
    console = proc.stdout + proc.stderr
    assert "Using workflow specific profile profiles/default" in console
    # show-failed-logs: the job's own one-line error, not only the path of its log.
    assert (
        f"doubledescent train: error: checkpoint results/tiny/checkpoints/{BROKEN}.pt is corrupt"
        in console
    ), console[-3000:]
    groups = clone / "results" / "tiny" / "groups"
    finished = {p.stem for p in groups.glob("*.parquet")}
    assert finished == {f"width~{w}_norm~{n}" for w in (4, 32) for n in ("none", "batch")} - {
        BROKEN
    }
    assert ckpt.read_bytes() == b"not a checkpoint"  # left for the user to look at

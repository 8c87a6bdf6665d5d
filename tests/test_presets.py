"""Every paper preset is a valid config whose DAG Snakemake can build (a dry run)."""

import re

import pytest

from tests.conftest import REPO, snakemake

PRESETS = sorted((REPO / "workflow" / "presets").glob("*.yaml"))


def test_there_are_presets():
    assert len(PRESETS) >= 2


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_preset_dry_runs(tmp_path, preset):
    proc = snakemake(tmp_path, "-n", "--quiet", "rules", configfile=preset)
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = re.search(r"^train_group\w*\s+(\d+)", proc.stdout, re.M)  # _reuse: weight reuse
    assert jobs and int(jobs.group(1)) > 0

"""One card per GPU job, with a simulated device count: CUDA_VISIBLE_DEVICES lists the cards,
as a scheduler or the NVIDIA driver would; the jobs themselves train on the CPU here."""

import subprocess
import sys

import pandas as pd

from doubledescent import gpus
from tests.conftest import TINY_TABLE, smaller_tiny, snakemake


def test_visible_cards_follow_cuda_visible_devices_or_the_driver(tmp_path):
    assert gpus.visible({"CUDA_VISIBLE_DEVICES": "0, 2"}) == ["0", "2"]
    assert gpus.visible({"CUDA_VISIBLE_DEVICES": ""}) == []  # hidden on purpose
    driver = tmp_path / "gpus"
    for pci in ("0000:01:00.0", "0000:41:00.0", "0000:81:00.0"):
        (driver / pci).mkdir(parents=True)
    assert gpus.visible({}, proc=driver) == ["0", "1", "2"]
    assert gpus.visible({}, proc=tmp_path / "no-driver") == []


def test_gpu_jobs_ask_for_one_card_where_they_train_on_cuda(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    assert [gpus.per_job(d) for d in ("cuda", "auto", "cpu")] == [1, 1, 0]
    assert [gpus.default_limit(d) for d in ("cuda", "auto", "cpu")] == [3, 3, 0]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert [gpus.per_job(d) for d in ("cuda", "auto", "cpu")] == [1, 0, 0]
    assert gpus.default_limit("cuda") == 0  # no card on this host: nothing to bound


HOLDER = """
import sys
from pathlib import Path
from doubledescent import gpus
with gpus.claim(["0", "1"], Path(sys.argv[1]), log=lambda s: print(s, flush=True)) as card:
    print("card", card, flush=True)
    sys.stdin.readline()  # hold the card until the test says so
"""


def holder(lock_dir) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def release(proc: subprocess.Popen) -> None:
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.wait(timeout=60) == 0


def claimed_card(proc: subprocess.Popen) -> str:
    words = proc.stdout.readline().split()
    assert words[0] == "card", words
    return words[1]


def test_concurrent_jobs_claim_distinct_cards_and_a_third_waits(tmp_path):
    first, second = holder(tmp_path), holder(tmp_path)
    cards = [claimed_card(first), claimed_card(second)]
    assert sorted(cards) == ["0", "1"]
    third = holder(tmp_path)
    assert third.stdout.readline().startswith("all 2 GPUs are taken")
    release(second)  # frees one card: the waiting job takes exactly that one
    assert claimed_card(third) == cards[1]
    release(first)
    release(third)


def test_a_killed_job_frees_its_card(tmp_path):
    job = holder(tmp_path)
    card = claimed_card(job)
    job.kill()
    job.wait(timeout=60)
    with gpus.claim([card], tmp_path) as again:
        assert again == card


def test_training_jobs_each_claim_a_card_in_the_pipeline(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    # Two groups, one job each: on a GPU `packing: auto` would make the experiment one job.
    two_groups = smaller_tiny(tmp_path, widths=[4, 32], regularizers={"none": {}})
    proc = snakemake(tmp_path, TINY_TABLE, "--config", "packing=none", configfile=two_groups)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert 'Provided resources: gpu=Resource("gpu", 2)' in out  # one job per card at most
    logs = sorted((tmp_path / "results" / "tiny" / "logs" / "train").glob("*.log"))
    claimed = [line for log in logs for line in log.read_text().splitlines() if "on GPU" in line]
    assert len(claimed) == len(logs) == 2
    assert {line.split()[3] for line in claimed} <= {"0", "1"}
    df = pd.read_parquet(tmp_path / "results" / "tiny" / "metrics.parquet")
    assert (df.device == "cpu").all()  # torch sees no CUDA here: the simulated cards are unused

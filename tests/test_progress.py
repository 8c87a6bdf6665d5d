"""A training job reports its progress every N seconds, with an ETA, between evaluations."""

import dataclasses
import json

import pytest

from doubledescent import progress, train
from tests.test_resume import spec


class Clock:
    """A clock the test moves by hand: the reports depend on time, not on machine speed."""

    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_reports_every_interval_with_an_eta_from_this_process_speed(tmp_path):
    clock, lines = Clock(), []
    path = tmp_path / "group.progress.json"
    # Resumed at epoch 2 of 10 (4 steps each) after 50 s in an earlier process.
    watch = progress.Watch(10, 4, 30, lines.append, path, epoch=2, elapsed=50.0, clock=clock)
    for _ in range(3):  # 3 steps in 29 s: not yet due
        clock.t += 29 / 3
        watch.step()
    assert lines == [] and not path.exists()
    clock.t += 2  # 31 s in, at the 4th step: due
    watch.step()
    record = json.loads(path.read_text())
    # 4 steps in 31 s; 28 of the 40 steps left: 31 / 4 * 28 = 217 s.
    assert record["epoch"] == pytest.approx(3.0) and record["epochs"] == 10
    assert record["elapsed"] == pytest.approx(81.0) and record["eta"] == pytest.approx(217.0)
    assert lines == ["progress: epoch 3.0/10  elapsed 1m21s  eta 3m37s"]
    clock.t += 29  # the next report is due 30 s after the last one, not before
    watch.step()
    assert len(lines) == 1
    clock.t += 1
    watch.step()
    assert len(lines) == 2 and progress.read(path)["epoch"] == pytest.approx(3.5)


def test_zero_seconds_means_no_progress_reports(tmp_path):
    clock, lines = Clock(), []
    watch = progress.Watch(2, 3, 0, lines.append, tmp_path / "p.json", clock=clock)
    watch.report()
    for _ in range(6):
        clock.t += 1000
        watch.step()
    assert lines == [] and progress.read(tmp_path / "p.json") is None


@pytest.mark.parametrize("seconds,text", [(7.4, "7s"), (125, "2m05s"), (11220, "3h07m")])
def test_durations_read_as_hours_minutes_seconds(seconds, text):
    assert progress.duration(seconds) == text


def test_training_logs_progress_between_evaluations(small_data, tmp_path):
    """With eval epochs only at 1 and 40 and a report due at every step, progress lines
    still come from every epoch in between, and the file holds the last one."""
    s = spec()
    s = dataclasses.replace(s, training=dataclasses.replace(s.training, eval_epochs=(1,)))
    lines = []
    path = tmp_path / "p.json"
    train.train_group(
        s, small_data, "cpu", log=lines.append, progress_every=1e-9, progress_path=path
    )
    reported = {
        float(line.split()[2].split("/")[0]) for line in lines if line.startswith("progress")
    }
    assert reported >= {e + 0.5 for e in range(40)}  # 30 steps per epoch: the 15th of each
    record = progress.read(path)
    assert record["epochs"] == 40 and 39 < record["epoch"] <= 40

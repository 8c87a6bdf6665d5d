"""`doubledescent estimate`: a config's cost from the resource model, before running it."""

import pytest

from doubledescent import cli, config, estimate, resources
from tests.conftest import SCHEMA, TINY


def test_makespan_starts_the_longest_jobs_first():
    # Longest first on 2 workers: 5 | 4, then 3 joins 4 (7), 2 joins 5 (7), 1 joins 7: 8.
    assert estimate.makespan([1, 2, 3, 4, 5], 2) == 8
    assert estimate.makespan([1, 2, 3, 4, 5], 10) == 5
    assert estimate.makespan([1, 2, 3, 4, 5], 1) == 15


def test_cost_of_the_tiny_config_sums_the_resource_model():
    cfg = config.load(TINY, SCHEMA)
    exp = cfg["experiments"]["tiny"]
    groups = config.groups(exp)
    seconds = sorted(
        resources.train_seconds(exp, runs[0].width, len(runs)) for runs in groups.values()
    )
    cost = estimate.experiment_cost("tiny", exp, cores=2, threads=1, gpu=False)
    assert (cost.jobs, cost.runs) == (6, 24)
    assert cost.hours == pytest.approx(sum(seconds) / 3600)
    # Two at a time, longest first: the two longest together, then the next pairs.
    assert cost.wall_hours >= max(seconds) / 3600
    assert cost.wall_hours == pytest.approx(estimate.makespan(seconds, 2) / 3600)
    two_threads = estimate.experiment_cost("tiny", exp, cores=2, threads=2, gpu=False)
    assert two_threads.hours == pytest.approx(2 * cost.hours)  # each job holds two cores
    assert two_threads.wall_hours == pytest.approx(sum(seconds) / 3600)  # one job at a time


def test_gpu_cost_is_in_gpu_hours_shared_by_the_cards():
    exp = config.load(TINY, SCHEMA)["experiments"]["tiny"]
    one = estimate.experiment_cost("tiny", exp, cores=2, threads=1, gpu=True, cards=1)
    many = estimate.experiment_cost("tiny", exp, cores=2, threads=1, gpu=True, cards=6)
    assert one.wall_hours == pytest.approx(one.hours) and many.hours == one.hours
    assert many.wall_hours < one.wall_hours


def test_cli_prints_a_line_per_experiment(capsys):
    assert cli.main(["estimate", "--configfile", str(TINY), "--cores", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tiny: 6 training jobs, 24 runs, ") and " core-hours, about " in out
    assert "on 2 cores" in out


def test_cli_names_a_missing_config(capsys):
    assert cli.main(["estimate", "--configfile", "no/such.yaml"]) == 1
    assert "config file not found: no/such.yaml" in capsys.readouterr().err


def test_later_config_files_override_earlier_ones_key_by_key(tmp_path, capsys):
    override = tmp_path / "fewer.yaml"
    override.write_text("experiments: {tiny: {widths: [4]}}\n")
    assert cli.main(["estimate", "--configfile", str(TINY), str(override)]) == 0
    # The tiny experiment's other keys stay: 4 regularizers (2 shapes) x 2 seeds at width 4.
    assert capsys.readouterr().out.startswith("tiny: 2 training jobs, 8 runs, ")

"""The whole DAG on the tiny config, through Snakemake, as a user runs it."""

import json
import platform

import numpy as np
import pandas as pd
import torch
import yaml

from doubledescent import config, targets
from tests.conftest import SCHEMA, TINY, check_tiny_metrics, report, snakemake


def test_metrics_table(tiny_run):
    df = check_tiny_metrics(tiny_run)
    csv = pd.read_csv(tiny_run / "results" / "tiny" / "metrics.csv")
    np.testing.assert_allclose(csv.test_error, df.test_error)


def test_figures_and_summary(tiny_run):
    fig_dir = tiny_run / "results" / "tiny" / "figures"
    assert (fig_dir / "model_wise.pdf").read_bytes().startswith(b"%PDF")
    assert (fig_dir / "model_wise.png").read_bytes().startswith(b"\x89PNG")
    summary = pd.read_csv(tiny_run / "results" / "tiny" / "summary.csv")
    assert set(summary.regularizer) == {"none", "l2", "dropout", "batchnorm"}
    assert summary.peak_test_error.between(0, 1).all()


def test_report_has_each_figure_once_with_the_experiments_settings(tiny_run):
    entries = report(tiny_run)
    figures = ["model_wise", "model_wise_loss", "memorization", "epoch_wise", "epoch_curves"]
    expected = {f"results/tiny/figures/{f}.png" for f in figures} | {"results/tiny/summary.csv"}
    assert set(entries) == expected
    caption = entries["results/tiny/figures/model_wise.png"]["caption"]
    for setting in [
        "Experiment <strong>tiny</strong>",
        "400 training and 400 test samples",
        "20% of the training labels replaced by a uniformly random class",
        "an MLP with 2 hidden layers of width h, h in 4, 32, 128",
        "SGD with momentum 0.9, learning rate 0.05, cross-entropy, batch size 50, 6 epochs",
        "weight decay 0.001 on the weights",
        "dropout 0.2",
        "batch normalization",
    ]:
        assert setting in caption, (setting, caption)
    assert "train cross-entropy" in entries["results/tiny/figures/model_wise_loss.png"]["caption"]
    assert "interpolation threshold" in entries["results/tiny/summary.csv"]["caption"]


def test_changing_the_progress_interval_retrains_nothing(tiny_run, tmp_path):
    cfg = yaml.safe_load(TINY.read_text())
    cfg["progress_every"] = 7
    changed = tmp_path / "progress.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    dry = snakemake(tiny_run, "-n", configfile=changed)
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout


def test_provenance(tiny_run):
    prov = json.loads((tiny_run / "results" / "tiny" / "provenance.json").read_text())
    assert prov["experiment"] == "tiny"
    tiny = yaml.safe_load(TINY.read_text())["experiments"]["tiny"]
    assert prov["config"]["widths"] == tiny["widths"]
    assert prov["config"]["training"]["momentum"] == 0.9  # defaults resolved
    assert prov["config"]["device"] == "auto"
    commit = prov["git"]["commit"]
    assert commit is None or len(commit) == 40  # null where the checkout is not a git repo
    assert set(prov["versions"]) >= {"python", "torch", "numpy", "pandas", "snakemake"}
    assert prov["versions"]["python"] == platform.python_version()
    training = prov["training"]
    assert training["devices"] == ["cuda" if torch.cuda.is_available() else "cpu"]
    assert training["hostnames"] == [platform.node()]
    assert training["runs"] == 24 and training["groups"] == 6
    assert training["first_group_finished_at"] <= training["last_group_finished_at"]
    assert training["last_group_finished_at"] <= prov["written_at"]


def test_longest_training_jobs_start_first(tiny_run):
    """Priorities follow the estimated cost, so no long job starts late and idles the cores."""
    # The first run's log: later tests add logs of dry runs and reports.
    log = sorted((tiny_run / ".snakemake" / "log").glob("*.snakemake.log"))[0].read_text()
    started = [line.split()[-1] for line in log.splitlines() if "Training tiny" in line]
    assert len(started) == 6
    # Two cores: both width-128 groups start at once, then the rest by decreasing width.
    assert {g.split("_")[0] for g in started[:2]} == {"width~128"}
    widths = [int(g.split("_")[0].split("~")[1]) for g in started]
    assert widths == sorted(widths, reverse=True)


def test_rerun_retrains_nothing_and_a_new_width_only_its_groups(tiny_run, tmp_path):
    assert "Nothing to be done" in snakemake(tiny_run, "-n").stdout
    cfg = yaml.safe_load(TINY.read_text())
    cfg["experiments"]["tiny"]["widths"].append(64)
    wider = tmp_path / "wider.yaml"
    wider.write_text(yaml.safe_dump(cfg))
    out = snakemake(tiny_run, "-n", "--quiet", "rules", configfile=wider).stdout
    train_line = next(line for line in out.splitlines() if line.startswith("train_group"))
    assert train_line.split()[1] == "2"  # width 64, with and without batchnorm


def test_a_finished_run_has_exactly_the_final_outputs(tiny_run):
    """What targets lists is what the workflow writes: every file, and no other figure."""
    expected = targets.final_outputs(config.load(TINY, SCHEMA)["experiments"])
    assert all((tiny_run / p).is_file() for p in expected)
    figures = {str(p.relative_to(tiny_run)) for p in tiny_run.glob("results/tiny/figures/*")}
    assert figures == {p for p in expected if "/figures/" in p}

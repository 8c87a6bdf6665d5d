"""The workflow's targets: which figures and files a config leads to, and which group ids
its wildcards accept, computed without Snakemake (and without torch or matplotlib)."""

import copy
import re
import subprocess
import sys

import pytest

from doubledescent import config, targets
from tests.conftest import REPO, SCHEMA, TINY

PLAIN_FIGURES = ["model_wise", "model_wise_loss", "memorization", "epoch_wise", "epoch_curves"]


def experiments(path) -> dict:
    return config.load(path, SCHEMA)["experiments"]


DEFAULT = experiments(REPO / "config.yaml")
SAMPLEWISE = experiments(REPO / "tests" / "configs" / "tiny_samplewise.yaml")


def test_each_figure_goes_to_the_experiments_that_have_its_axis():
    assert targets.figures_of(DEFAULT["mnist1d_mlp"]) == PLAIN_FIGURES
    # A weight-decay grid adds the optimal-regularization figure, a size sweep the
    # sample-wise one; tiny_samplewise has both.
    assert targets.figures_of(DEFAULT["mnist1d_optimal_l2"]) == [
        *PLAIN_FIGURES,
        "optimal_regularization",
    ]
    assert targets.figures_of(SAMPLEWISE["tiny_samplewise"]) == targets.FIGURES
    sizes_only = {**DEFAULT["mnist1d_mlp"], "dataset": SAMPLEWISE["tiny_samplewise"]["dataset"]}
    assert targets.figures_of(sizes_only) == [*PLAIN_FIGURES, "sample_wise"]


def figure_files(folder: str, figures: list[str]) -> list[str]:
    return [f"{folder}/figures/{f}.{ext}" for f in figures for ext in ("pdf", "png", "svg")]


def test_final_outputs_of_the_default_config():
    tables = ["metrics.parquet", "summary.csv", "summary.tex", "provenance.json"]
    mlp, grid = "results/mnist1d_mlp", "results/mnist1d_optimal_l2"
    expected = [
        *(f"{mlp}/{t}" for t in tables),
        *figure_files(mlp, PLAIN_FIGURES),
        *(f"{grid}/{t}" for t in tables),
        f"{grid}/optimal_regularization.csv",
        f"{grid}/optimal_regularization.tex",
        *figure_files(grid, [*PLAIN_FIGURES, "optimal_regularization"]),
    ]
    assert targets.final_outputs(DEFAULT) == expected


def test_final_outputs_of_a_sweep_of_sizes_in_another_folder():
    out = targets.final_outputs(SAMPLEWISE, results="elsewhere")
    assert len(out) == len(set(out)) == 4 + 2 + 3 * len(targets.FIGURES)
    assert "elsewhere/tiny_samplewise/figures/sample_wise.svg" in out
    assert "elsewhere/tiny_samplewise/optimal_regularization.tex" in out
    assert all(p.startswith("elsewhere/tiny_samplewise/") for p in out)


def accepts(constraints: dict, wildcard: str, value: str) -> bool:
    return re.fullmatch(constraints[wildcard], value) is not None


@pytest.mark.parametrize(
    "config_file", [REPO / "config.yaml", TINY, REPO / "tests" / "configs" / "tiny_samplewise.yaml"]
)
def test_the_group_pattern_accepts_exactly_the_configs_groups(config_file):
    exps = experiments(config_file)
    constraints = targets.wildcard_constraints(exps)
    ids = {gid for exp in exps.values() for gid in config.groups(exp)}
    assert all(accepts(constraints, "group", gid) for gid in ids)
    # Ids of other widths, sizes or shapes, and pieces of real ones, are no group of it.
    width, n = min(w for exp in exps.values() for w in exp["widths"]), 150
    near_misses = [
        f"width~{width + 1000}_norm~none",
        f"n~{n + 1}_width~{width}_norm~none",
        f"n~{n}_width~{width}_norm~none",
        f"width~{width}_norm~none",
        f"width~{width}_norm~batchnorm",
        f"width~{width}",
    ]
    for gid in set(near_misses) - ids:
        assert not accepts(constraints, "group", gid), gid
    assert any(gid.startswith("n~") for gid in ids) == config.sweeps_sizes(
        next(iter(exps.values()))
    )


def test_experiment_and_figure_patterns_are_exact():
    constraints = targets.wildcard_constraints({"a.b": DEFAULT["mnist1d_mlp"]})
    assert accepts(constraints, "experiment", "a.b")
    assert not accepts(constraints, "experiment", "axb")  # the dot is literal
    assert all(accepts(constraints, "figure", f) for f in targets.FIGURES)
    assert not accepts(constraints, "figure", "model_wise_los")


def test_targets_import_neither_torch_nor_matplotlib():
    code = (
        "import sys, doubledescent.targets, doubledescent.cli; "
        "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_data_pattern_names_one_dataset_per_noise_rate():
    exp = copy.deepcopy(DEFAULT["mnist1d_mlp"])
    assert accepts(targets.wildcard_constraints({"e": exp}), "data", "data")
    exp["dataset"]["label_noise"] = [0.0, 0.2]
    constraints = targets.wildcard_constraints({"e": exp})
    names = [config.data_name(q) for q in config.noise_levels(exp)]
    assert all(accepts(constraints, "data", n) for n in names)
    assert not accepts(constraints, "data", "data")
    assert not accepts(constraints, "data", config.data_name(0.1))

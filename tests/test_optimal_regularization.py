"""Weight-decay grids: expansion into variants, the oracle envelope, its figure, the DAG."""

import pandas as pd
import pytest
import yaml

from doubledescent import cli, config, plots, results
from doubledescent.errors import UserError
from tests.conftest import REPO, SCHEMA

GRID = REPO / "tests" / "configs" / "tiny_grid.yaml"


def grid_experiment() -> dict:
    return config.validate(yaml.safe_load(GRID.read_text()), SCHEMA)["experiments"]["tiny_grid"]


def test_grid_expands_into_one_variant_per_value():
    exp = grid_experiment()
    assert list(config.variants(exp)) == ["none", "l2@0", "l2@0.001", "l2@0.1"]
    assert config.variants(exp)["l2@0.1"]["weight_decay"] == 0.1
    assert len(config.runs(exp)) == 2 * 4 * 1
    assert config.family("l2@0.001") == "l2" and config.family("none") == "none"
    assert config.has_grid(exp)
    assert not config.has_grid({**exp, "regularizers": {"none": exp["regularizers"]["none"]}})


def grid_table() -> pd.DataFrame:
    """Two seeds; at width 8 lambda 0.1 is best, at width 64 lambda 0 is, by construction."""
    errors = {(8, 0.0): 0.50, (8, 0.1): 0.40, (64, 0.0): 0.30, (64, 0.1): 0.35}
    # Validation agrees with the test set at width 8 and is fooled at width 64.
    val = {(8, 0.0): 0.6, (8, 0.1): 0.5, (64, 0.0): 0.45, (64, 0.1): 0.4}
    rows = [
        {
            "regularizer": f"l2@{wd:g}",
            "weight_decay": wd,
            "width": w,
            "n_params": 10 * w,
            "seed": s,
            "epoch": 5,
            "run_id": f"{w}-{wd}-{s}",
            "label_noise": 0.2,
            "n_fit": 240,
            "diverged": False,
            "test_error": e + 0.01 * s,
            "val_error": val[w, wd],
        }
        for (w, wd), e in errors.items()
        for s in (0, 1)
    ]
    rows.append({**rows[0], "regularizer": "none", "run_id": "n"})  # not part of a grid
    return pd.DataFrame(rows)


def test_oracle_envelope_picks_the_best_weight_decay_per_width():
    env = results.envelope(grid_table()).set_index("width")
    assert env.loc[8, "best_weight_decay"] == 0.1
    assert env.loc[64, "best_weight_decay"] == 0.0
    assert env.loc[8, "test_error"] == pytest.approx(0.405)
    assert set(env["family"]) == {"l2"}


def test_validation_choice_reports_the_chosen_lambdas_test_error():
    env = results.envelope(grid_table(), choose_by="val_error").set_index("width")
    assert env.loc[8, "best_weight_decay"] == 0.1
    assert env.loc[64, "best_weight_decay"] == 0.1  # not the oracle's 0.0
    assert env.loc[64, "test_error"] == pytest.approx(0.355)
    no_split = grid_table().assign(val_error=float("nan"))
    assert results.envelope(no_split, choose_by="val_error").empty


def test_table_sets_the_validation_choice_beside_the_oracle():
    best = results.optimal_regularization(grid_table()).set_index("width")
    assert list(best.columns) == [
        "label_noise",
        "n_fit",
        "family",
        "n_params",
        "chosen_weight_decay",
        "chosen_test_error",
        "oracle_weight_decay",
        "oracle_test_error",
    ]
    # Width 64: validation is fooled into 0.1 (test error 0.355), the oracle takes 0.0 (0.305).
    assert best.loc[64, ["chosen_weight_decay", "oracle_weight_decay"]].tolist() == [0.1, 0.0]
    assert best.loc[64, "chosen_test_error"] == pytest.approx(0.355)
    assert best.loc[64, "oracle_test_error"] == pytest.approx(0.305)
    assert best.loc[8, ["chosen_weight_decay", "oracle_weight_decay"]].tolist() == [0.1, 0.1]
    no_split = results.optimal_regularization(grid_table().assign(val_error=float("nan")))
    assert no_split["chosen_weight_decay"].isna().all()
    assert no_split["oracle_weight_decay"].tolist() == [0.1, 0.0]


def test_a_run_that_diverges_at_its_last_evaluation_is_left_out():
    df = grid_table()
    good = df[(df["width"] == 64) & (df["weight_decay"] == 0.1)].iloc[0]
    earlier = {**good, "seed": 2, "run_id": "late", "epoch": 4, "test_error": 0.0}
    last = {**earlier, "epoch": 5, "diverged": True, "test_error": float("nan")}
    best = results.optimal_regularization(pd.concat([df, pd.DataFrame([earlier, last])]))
    # Epoch 4's 0.0 taken as final would make 0.1 the oracle's choice at width 64.
    assert best.set_index("width").loc[64, "oracle_weight_decay"] == 0.0


def test_ties_go_to_the_smaller_weight_decay():
    """Validation ties 0.01 with 0.1 (their test errors differ), the test set 0 with 0.01."""
    errors = {0.1: (0.4, 0.4), 0.01: (0.4, 0.3), 0.0: (0.5, 0.3)}  # lambda: (val, test)
    df = pd.DataFrame(
        [  # largest lambda first: the choice must not follow the row order
            {
                "regularizer": f"l2@{wd:g}",
                "weight_decay": wd,
                "width": 8,
                "n_params": 80,
                "seed": 0,
                "epoch": 5,
                "run_id": f"{wd}",
                "label_noise": 0.2,
                "n_fit": 240,
                "diverged": False,
                "val_error": val,
                "test_error": test,
            }
            for wd, (val, test) in errors.items()
        ]
    )
    best = results.optimal_regularization(df).iloc[0]
    assert (best["chosen_weight_decay"], best["chosen_test_error"]) == (0.01, 0.3)
    assert (best["oracle_weight_decay"], best["oracle_test_error"]) == (0.0, 0.3)


def test_table_as_latex_and_through_the_cli(tmp_path):
    metrics, csv, tex = (tmp_path / n for n in ("m.parquet", "best.csv", "best.tex"))
    grid_table().to_parquet(metrics)
    argv = ["optimal", "--metrics", str(metrics), "--out", str(csv), "--tex", str(tex)]
    assert cli.main(argv) == 0
    assert len(pd.read_csv(csv)) == 2
    latex = tex.read_text()
    assert latex.count("\\toprule") == 1 and "Training samples" not in latex
    rows = latex.split("\\midrule")[1].split("\\bottomrule")[0].strip().splitlines()
    assert rows[1].split(" & ")[:5] == ["l2", "64", "640", "0.1", "35.5"]
    grid_table().query("regularizer == 'none'").to_parquet(metrics)
    assert cli.main(argv) == 1  # no grid: one line on stderr, no table


def test_figure_draws_each_lambda_and_the_envelope():
    fig = plots.optimal_regularization(grid_table())
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert {"validation-chosen", "oracle (test-chosen)"} <= set(labels)
    assert len([lb for lb in labels if not lb.startswith("_")]) == 4  # 2 lambdas + 2 choices
    with pytest.raises(UserError, match="no weight-decay grid"):
        plots.optimal_regularization(grid_table().query("regularizer == 'none'"))

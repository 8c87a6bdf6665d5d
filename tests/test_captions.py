"""Captions follow the settings: the loss, the schedule, the size axis and grids."""

from doubledescent import captions, config
from tests.conftest import SCHEMA


def experiment(**training) -> dict:
    exp = {
        "dataset": {"name": "mnist1d", "n_train": [500, 1000], "validation": 100},
        "model": {"name": "mnist1d_cnn"},
        "widths": [16, 4],
        "regularizers": {"l2": {"weight_decay": [0.0, 1.0e-3]}},
        "seeds": [3],
        "training": training,
        "plot": {"x": "width", "errorbar": "ci"},
    }
    return config.validate({"experiments": {"e": exp}}, SCHEMA)["experiments"]["e"]


def test_caption_of_a_squared_loss_sweep_with_a_schedule():
    exp = experiment(loss="mse", momentum=0.0, schedule="inverse_sqrt", l2_mode="decoupled")
    text = captions.caption("e", exp, "plot", "model_wise_loss")
    for part in [
        "final test and train squared loss (one-hot targets)",
        "against the width c",
        "a 95% bootstrap confidence interval",
        "500, 1000 training and 12000 test samples (100 of the training samples held out",
        "Greydanus & Kobak's MNIST-1D CNN with c channels per layer, c in 4, 16",
        "SGD without momentum, learning rate 0.01 divided by sqrt(1 + floor(step / 512))",
        "- ``l2@0``: no regularization",
        "- ``l2@0.001``: weight decay 0.001 on the weights, decoupled from the optimizer",
    ]:
        assert part in text, (part, text)
    assert "label" not in captions.settings(exp).split("Model:")[0]  # no noise, none named
    assert "cross-entropy" not in text


def test_table_captions_name_their_files():
    exp = experiment()
    assert "``summary.tex``" in captions.caption("e", exp, "summarize")
    text = captions.caption("e", exp, "optimal_regularization_table")
    assert "``optimal_regularization.tex``" in text and "cross-entropy" in text

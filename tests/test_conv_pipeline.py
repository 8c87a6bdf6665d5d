"""A conv net through the DAG (data, training, table, summary, a figure and its report entry),
on CIFAR-10 files in their real on-disk format."""

import numpy as np
import pandas as pd

from doubledescent import data, results
from tests.conftest import REPO, report, snakemake
from tests.dataset_files import write_cifar

CONFIG = REPO / "tests" / "configs" / "tiny_cnn.yaml"


def cnn5_params(c: int, batchnorm: bool) -> int:
    """Conv weights 9 (3c + 2c^2 + 8c^2 + 32c^2), biases 15c, BN 2 x 15c, head 80c + 10."""
    return 378 * c * c + 27 * c + 15 * c + 80 * c + 10 + (30 * c if batchnorm else 0)


def test_cnn5_pipeline_on_cifar10_files(tmp_path):
    write_cifar(tmp_path / "data", "cifar10", n_train=60, n_test=30)
    # The table and one figure: the others draw the same table columns whatever the model
    # (tests/test_pipeline.py runs them all), and each figure job is a process of its own.
    figure = "results/tiny_cnn/figures/model_wise.png"
    proc = snakemake(tmp_path, "results/tiny_cnn/summary.csv", figure, configfile=CONFIG)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "results" / "tiny_cnn"
    df = pd.read_parquet(out / "metrics.parquet")
    assert list(df.columns[: len(results.KEY_COLUMNS)]) == results.KEY_COLUMNS
    assert (df.model == "cnn5").all() and (df.dataset == "cifar10").all()
    assert df.run_id.nunique() == 4 and len(df) == 4 * 2  # widths x variants, 2 eval epochs
    assert sorted(df.epoch.unique()) == [1, 2]
    for col in ["train_error", "train_error_clean", "test_error", "noisy_fit"]:
        assert df[col].between(0, 1).all(), col
    assert np.isfinite(df[["train_loss", "test_loss"]].to_numpy()).all()
    assert not df.diverged.any()
    noisy = data.noisy_label_error(df.test_error, 0.2, 10, "wrong_class")
    np.testing.assert_allclose(df.test_error_noisy, noisy)
    expected = [cnn5_params(w, bn) for w, bn in zip(df.width, df.batchnorm)]
    assert df.n_params.tolist() == expected
    assert (out / "figures" / "model_wise.pdf").read_bytes().startswith(b"%PDF")
    # The report's captions name this experiment's model, optimizer, noise and augmentation.
    caption = report(tmp_path, figure, configfile=CONFIG)[figure]["caption"]
    for setting in [
        "5-layer CNN with c, 2c, 4c, 8c channels, c in 1, 2",
        "Adam (betas 0.9, 0.999, eps 1e-08), learning rate 0.001",
        "replaced by always a wrong class",
        "augmented with random crops (padding 4) and horizontal flips",
        "weight decay 0.0001 on the weights, added to the gradient; dropout 0.1; batch norm",
    ]:
        assert setting in caption, (setting, caption)
    assert "momentum" not in caption and "hidden layers" not in caption

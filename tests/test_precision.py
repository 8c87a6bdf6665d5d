"""bfloat16 autocast on the CPU runs the code a GPU runs: every model family trains under it,
the narrow classifier head included, with gradients close to float32's."""

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from doubledescent import config, data, train
from doubledescent.models import layers
from tests.conftest import SCHEMA, snakemake
from tests.dataset_files import write_cifar

# Each family at a width whose head has fan_in >= WIDE_IN and fan_out < NARROW_OUT, so it
# takes layers.NarrowLinear (the layer whose backward once mixed bf16 and float32): the MLP's
# h, 8c for cnn5, 8k for the ResNet, 5c (MNIST-1D's 40 samples after three stride-2 convs).
NARROW_HEAD_WIDTHS = {"mlp": 64, "cnn5": 8, "preact_resnet18": 8, "mnist1d_cnn": 13}
DATASETS = {
    "mlp": "mnist1d",
    "mnist1d_cnn": "mnist1d",
    "cnn5": "cifar10",
    "preact_resnet18": "cifar10",
}


@pytest.mark.parametrize(
    "precision,model,device,expected",
    [
        ("auto", "cnn5", "cuda", True),
        ("auto", "preact_resnet18", "cuda", True),
        ("auto", "mnist1d_cnn", "cuda", True),
        ("auto", "mlp", "cuda", False),
        ("fp32", "cnn5", "cuda", False),
        ("bf16", "mlp", "cuda", True),
        ("auto", "cnn5", "cpu", False),  # auto is fp32 on the CPU
        ("bf16", "cnn5", "cpu", True),  # an explicit bf16 is bf16 everywhere
        ("bf16", "mlp", "cpu", True),
    ],
)
def test_precision_resolves(precision, model, device, expected):
    assert train.uses_bf16(precision, model, torch.device(device)) is expected


def test_narrow_linear_backward_under_autocast_matches_float32():
    gen = torch.Generator().manual_seed(0)
    h, w, b = (torch.randn(s, generator=gen) for s in [(3, 16, 64), (3, 64, 10), (3, 1, 10)])
    grads = {}
    for bf16 in (False, True):
        leaves = [t.clone().requires_grad_() for t in (h, w, b)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = layers.linear(*leaves)
        assert out.grad_fn.name().startswith("NarrowLinear")
        assert out.dtype == (torch.bfloat16 if bf16 else torch.float32)
        out.float().square().sum().backward()
        assert all(t.grad.dtype == torch.float32 for t in leaves)
        grads[bf16] = torch.cat([t.grad.flatten() for t in leaves])
    assert relative_error(grads[True], grads[False]) < 0.02


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, data.Arrays]:
    root = tmp_path_factory.mktemp("data")
    write_cifar(root, "cifar10", n_train=48, n_test=16)
    return {
        "mnist1d": data.build(dataset("mnist1d", root)),
        "cifar10": data.build(dataset("cifar10", root)),
    }


def dataset(name: str, root) -> dict:
    sizes = {"mnist1d": (200, 100), "cifar10": (48, 16)}[name]
    ds = {
        "name": name,
        "n_train": sizes[0],
        "n_test": sizes[1],
        "label_noise": 0.1,
        "root": str(root),
    }
    return config.validate({"experiments": {"e": experiment_config("mlp", ds, 2, "fp32")}}, SCHEMA)[
        "experiments"
    ]["e"]["dataset"]


def experiment_config(model: str, ds: dict, width: int, precision: str) -> dict:
    return {
        "dataset": ds,
        "model": {"name": model},
        "widths": [width],
        "regularizers": {"none": {}, "drop_l2": {"dropout": 0.1, "weight_decay": 1e-3}},
        "seeds": [0],
        "training": {"precision": precision, "batch_size": 16, "epochs": 1, "lr": 0.01},
    }


def validated(model: str, precision: str) -> dict:
    """The experiment of `model` at its narrow-head width, with the schema's defaults."""
    exp = experiment_config(
        model, dataset(DATASETS[model], "data"), NARROW_HEAD_WIDTHS[model], precision
    )
    return config.validate({"experiments": {"e": exp}}, SCHEMA)["experiments"]["e"]


def group_of(model: str, arrays: data.Arrays, precision: str) -> tuple[train.Group, train.Tensors]:
    exp = validated(model, precision)
    gid = f"width~{NARROW_HEAD_WIDTHS[model]}_norm~none"
    spec = config.group_spec("e", exp, gid)
    shape = train.input_shape(spec, arrays)
    group = train.make_group(spec, config.groups(exp)[gid], shape, arrays.num_classes, "cpu")
    return group, train.Tensors.from_arrays(arrays, "cpu", shape=shape)


@pytest.mark.parametrize("model", NARROW_HEAD_WIDTHS)
def test_each_model_trains_under_bf16_on_the_cpu(model, datasets, monkeypatch):
    arrays = datasets[DATASETS[model]]
    narrow_calls = []
    apply = layers.NarrowLinear.apply
    monkeypatch.setattr(
        layers.NarrowLinear, "apply", lambda *a: narrow_calls.append(1) or apply(*a)
    )
    grads = {}
    for precision in ("fp32", "bf16"):
        group, tensors = group_of(model, arrays, precision)
        assert group.bf16 is (precision == "bf16")
        idx = torch.arange(16).expand(len(group.runs), 16)
        # The same initialization, batch and dropout masks: only the arithmetic differs.
        train.train_step(
            group, train.gather(tensors.x_train, idx), train.gather(tensors.y_train, idx)
        )
        grads[precision] = torch.cat([p.grad.flatten() for p in group.model.parameters()])
        assert all(p.dtype == torch.float32 for p in group.model.parameters())
        train.train_epoch(group, tensors, 16)
        metrics = train.evaluate(group.model, tensors, "cross_entropy")
        assert torch.isfinite(metrics["train_loss"]).all(), precision
    assert narrow_calls, "the narrow head was not taken"
    assert torch.isfinite(grads["bf16"]).all()
    # bf16 rounds each product to 8 significant bits, and a max-pool may pick another of two
    # near-equal inputs: measured 0.5-7% here; a float32/bf16 mix-up would be off by ~100%.
    assert relative_error(grads["bf16"], grads["fp32"]) < 0.1


def test_train_group_under_bf16_logs_and_records_it(datasets):
    spec = config.group_spec("e", validated("mlp", "bf16"), "width~64_norm~none")
    lines = []
    table = train.train_group(spec, datasets["mnist1d"], device="cpu", log=lines.append)
    assert any("bfloat16" in line for line in lines)
    assert (table.precision == "bf16").all()
    assert np.isfinite(table[["train_loss", "test_loss"]].to_numpy()).all()


def test_every_model_family_through_the_pipeline_in_bf16(tmp_path):
    write_cifar(tmp_path / "data", "cifar10", n_train=48, n_test=16)
    experiments = {
        model: experiment_config(
            model, dataset(DATASETS[model], "data"), NARROW_HEAD_WIDTHS[model], "bf16"
        )
        for model in NARROW_HEAD_WIDTHS
    }
    cfg = tmp_path / "bf16.yaml"
    cfg.write_text(yaml.safe_dump({"device": "cpu", "experiments": experiments}))
    # The tables only: the figures are not what this test is about.
    tables = [f"results/{model}/metrics.parquet" for model in NARROW_HEAD_WIDTHS]
    proc = snakemake(tmp_path, *tables, configfile=cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for model in NARROW_HEAD_WIDTHS:
        df = pd.read_parquet(tmp_path / "results" / model / "metrics.parquet")
        assert (df.model == model).all() and (df.precision == "bf16").all()
        assert np.isfinite(df[["train_loss", "test_loss"]].to_numpy()).all()
        assert not df.diverged.any()

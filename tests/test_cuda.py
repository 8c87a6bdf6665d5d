"""CUDA behaviour, where a GPU exists (benchmarks/gpu_check.py runs these on one): no host
synchronization inside the step loop (of groups and of a pack), a run's numbers independent
of its group and of packing, and checkpoint/resume ending with the numbers of an
uninterrupted run."""

import pandas as pd
import pytest
import torch

from doubledescent import config, packing, train
from tests.conftest import SCHEMA, crash_on_call
from tests.test_conv_models import image_data

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

METRICS = ["epoch", "train_loss", "train_error", "test_loss", "test_error"]
EVERY_REGULARIZER = {
    "none": {},
    "l2_dropout": {"weight_decay": 1e-2, "dropout": 0.2},
    "bn": {"batchnorm": True, "dropout": 0.1},
}


def experiment(model: str, regs: dict, training: dict | None = None, seeds=(0, 1)) -> dict:
    exp = {
        "dataset": {
            "name": "cifar10" if model == "cnn5" else "mnist1d",
            "n_train": 48,
            "n_test": 8,
        },
        "model": {"name": model},
        "widths": [4],
        "regularizers": regs,
        "seeds": list(seeds),
        "training": {"batch_size": 16, "epochs": 3, "eval_epochs": [1, 2, 3], **(training or {})},
    }
    return config.validate({"experiments": {"g": exp}}, SCHEMA)["experiments"]["g"]


def arrays_for(model: str):
    if model == "cnn5":
        return image_data("cnn5")
    return image_data("mnist1d_cnn")  # (1, 40) signals; the MLP flattens them


CASES = {
    "mlp_sgd": ("mlp", {}),
    "cnn5_adam_bf16_augment": (
        "cnn5",
        {
            "optimizer": "adam",
            "lr": 1e-3,
            "precision": "bf16",
            "schedule": "inverse_sqrt",
            "schedule_steps": 2,
            "augment": {"crop_padding": 2, "hflip": True},
        },
    ),
}


# (case, training job): each case's groups, and a pack of the MLP's groups of two widths.
JOBS = [
    *[(case, f"width~4_norm~{norm}") for case in CASES for norm in ("none", "batch")],
    ("mlp_sgd", "pack"),
]


@pytest.mark.parametrize("case, job", JOBS)
def test_step_loop_never_waits_for_the_device(case, job):
    model, training = CASES[case]
    exp = {**experiment(model, EVERY_REGULARIZER, training), "widths": [3, 4]}
    spec = packing.job_spec("g", exp, job)
    arrays = arrays_for(model)
    shape = train.input_shape(spec, arrays)
    runs = list(spec.runs)
    group = train.make_group(spec, runs, shape, arrays.num_classes, "cuda")
    tensors = train.Tensors.from_arrays(arrays, "cuda", shape=shape)
    train.train_epoch(group, tensors, 16)  # lazy initialization may synchronize once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(2):
            train.train_epoch(group, tensors, 16)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_run_numbers_do_not_depend_on_the_group_on_cuda():
    arrays = arrays_for("mlp")
    alone = train.train_group(
        config.group_spec("g", experiment("mlp", {"none": {}}, seeds=(1,)), "width~4_norm~none"),
        arrays,
        device="cuda",
        log=lambda s: None,
    )
    together = train.train_group(
        config.group_spec("g", experiment("mlp", EVERY_REGULARIZER), "width~4_norm~none"),
        arrays,
        device="cuda",
        log=lambda s: None,
    )
    mine = together[together.run_id == alone.run_id.iloc[0]].reset_index(drop=True)
    # Other batch sizes of the batched matmul may take other kernels: float32 rounding only.
    pd.testing.assert_frame_equal(alone[METRICS], mine[METRICS], rtol=1e-4, atol=1e-5)


def test_resume_on_cuda_ends_with_the_uninterrupted_numbers(tmp_path, monkeypatch):
    exp = experiment("cnn5", EVERY_REGULARIZER, CASES["cnn5_adam_bf16_augment"][1])
    spec = config.group_spec("g", exp, "width~4_norm~batch")
    arrays = arrays_for("cnn5")
    whole = train.train_group(spec, arrays, device="cuda", log=lambda s: None)
    real_epoch = crash_on_call(monkeypatch, train, "train_epoch", 3)  # in the third epoch
    ckpt = tmp_path / "c.pt"
    kwargs = {"device": "cuda", "checkpoint_path": ckpt, "checkpoint_every": 1}
    with pytest.raises(KeyboardInterrupt):
        train.train_group(spec, arrays, log=lambda s: None, **kwargs)
    monkeypatch.setattr(train, "train_epoch", real_epoch)
    lines = []
    resumed = train.train_group(spec, arrays, log=lines.append, **kwargs)
    step = 2 * spec.training.steps_per_epoch(len(arrays.y_train))
    assert lines[0] == f"resuming from the checkpoint at step {step} (epoch 2)"
    # The same kernels on the same device: the same numbers, to the last bit where cuDNN is
    # deterministic, and within float32 rounding where it picks algorithms per call.
    pd.testing.assert_frame_equal(resumed[METRICS], whole[METRICS], rtol=1e-5, atol=1e-6)


def test_a_pack_trains_each_group_as_alone_on_cuda():
    """Groups of several widths, with and without batchnorm, packed into one padded model:
    each run's numbers are its unpacked ones, within float32 rounding (other GEMM shapes)."""
    exp = {**experiment("mlp", EVERY_REGULARIZER), "widths": [3, 4, 9]}
    arrays = arrays_for("mlp")
    packed = train.train_group(
        packing.job_spec("g", exp, "pack"), arrays, device="cuda", log=lambda s: None
    )
    for gid in config.groups(exp):
        spec = config.group_spec("g", exp, gid)
        alone = train.train_group(spec, arrays, device="cuda", log=lambda s: None)
        mine = packed[packed.group == gid].reset_index(drop=True)
        pd.testing.assert_frame_equal(alone[METRICS], mine[METRICS], rtol=1e-4, atol=1e-5)

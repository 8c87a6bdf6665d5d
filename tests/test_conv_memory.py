"""Every image model trains with augmentation without corrupting memory, in a child process
(a crash there fails the test instead of killing pytest), under oneDNN's AVX2 kernels.

The crash this guards against: oneDNN 3.12's AVX2 weight gradient of a strided 1x1 conv
(ResNet18's shortcut) writes past its buffer when the input is channels-last and has fewer
than 8 channels (uxlfoundation/oneDNN#6035). augment.augment once returned a permuted view,
which one run's grouped layout kept as a channels-last tensor. The minimal torch repro, on a
CPU with AVX2 (or ONEDNN_MAX_CPU_ISA=AVX2):

    x = torch.randn(8, 4, 8, 8).contiguous(memory_format=torch.channels_last)
    w = torch.randn(8, 4, 1, 1, requires_grad=True)
    F.conv2d(x, w, stride=2).sum().backward()  # double free or corruption / SIGSEGV
"""

import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

from doubledescent import architectures, config, data, train
from doubledescent.models.layers import GroupedConv
from tests.conftest import REPO, SCHEMA

IMAGE_MODELS = [f.name for f in architectures.FAMILIES.values() if f.inputs == "image"]


def augmented_group_spec(name: str, seeds: list[int]) -> dict:
    exp = {
        "dataset": {"name": "cifar10", "n_train": 40, "n_test": 8},
        "model": {"name": name},
        "widths": [4],
        "regularizers": {"none": {}},
        "seeds": seeds,
        "training": {
            "batch_size": 20,
            "epochs": 2,
            "eval_epochs": [2],
            "augment": {"crop_padding": 4, "hflip": True},
        },
    }
    exp = config.validate({"experiments": {"t": exp}}, SCHEMA)["experiments"]["t"]
    (gid,) = config.groups(exp)
    return config.group_spec("t", exp, gid)


def child() -> None:
    """Train each image model, one run and two runs per group, and check the channels-last
    conv directly; print the losses."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 40)
    arrays = data.Arrays(
        x_train=x, y_train=y, x_test=x[:8], y_test=y[:8], y_train_clean=y, num_classes=10
    )
    for name in IMAGE_MODELS:
        for seeds in ([0], [0, 1]):
            df = train.train_group(augmented_group_spec(name, seeds), arrays, "cpu")
            print(name, len(seeds), df.train_loss.tolist(), flush=True)
    conv = GroupedConv(1, 4, 8, 1, stride=2, bias=False)
    conv.init_run(0, torch.Generator().manual_seed(0))
    h = torch.randn(8, 4, 8, 8).contiguous(memory_format=torch.channels_last)
    conv(h).sum().backward()
    print("shortcut", conv.weight.grad.abs().sum().item(), flush=True)


def test_every_image_model_trains_with_augmentation_in_a_child_process():
    # AVX2 is the ISA whose kernel had the bug; machines with AVX-512 would not run it.
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, "-c", "from tests.test_conv_memory import child; child()"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr[-2000:])
    lines = proc.stdout.split("\n")
    trained = [line.split(" ", 2) for line in lines if line.split(" ")[0] in IMAGE_MODELS]
    assert sorted((name, runs) for name, runs, _ in trained) == sorted(
        (name, runs) for name in IMAGE_MODELS for runs in ("1", "2")
    )
    for _, runs, losses in trained:
        values = [float(v) for v in losses.strip("[]").split(",")]
        assert len(values) == int(runs) and all(np.isfinite(values)), losses


def test_grouped_conv_gives_the_same_result_for_a_channels_last_input():
    conv = GroupedConv(2, 4, 8, 1, stride=2, bias=False)
    for run in range(2):
        conv.init_run(run, torch.Generator().manual_seed(run))
    h = torch.randn(3, 8, 8, 8)
    expected = F.conv2d(h, conv.weight.flatten(0, 1), None, 2, groups=2)
    got = conv(h.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected)
    assert got.is_contiguous()

"""The CIFAR networks with `model.batchnorm` are Nakkiran et al.'s (2019): parameter counts
summed from the authors' layer lists, written out here, not from our models.

The layer lists are those of preetum/optreg-code (Nakkiran et al.'s code):
common/models/myrtle_cnn.py, mCNN_bn_k (the CNN their training code trains), and
common/models/ResNet18k.py, resnet18k_cifar (kuangliu's PreActResNet18 with widths k..8k).
"""

import pytest

from doubledescent import config, models
from tests.conftest import SCHEMA

CIFAR = (3, 32, 32)


def conv(c_in, c_out, kernel, bias):
    return c_in * c_out * kernel * kernel + (c_out if bias else 0)


def batchnorm(c):
    return 2 * c  # scale and shift; running statistics are buffers


def linear(fan_in, fan_out, bias=True):
    return fan_in * fan_out + (fan_out if bias else 0)


def mcnn_bn_layers(c, classes=10):
    """mCNN_bn_k: conv3x3 (bias) -> BN -> ReLU for c, 2c, 4c, 8c, max-pools (no
    parameters), Linear(8c -> classes, bias)."""
    chans = [3, c, 2 * c, 4 * c, 8 * c]
    out = []
    for a, b in zip(chans, chans[1:]):
        out += [conv(a, b, 3, True), batchnorm(b)]
    return out + [linear(8 * c, classes)]


def resnet_blocks(k):
    """(in, out) channels of the 8 PreActBlocks: two per stage of widths k, 2k, 4k, 8k."""
    blocks, c_in = [], k
    for planes in (k, 2 * k, 4 * k, 8 * k):
        for _ in range(2):
            blocks.append((c_in, planes))
            c_in = planes
    return blocks


def resnet18k_layers(k, classes=10):
    """resnet18k_cifar: conv3x3 3 -> k (no bias); each PreActBlock BN(in) -> conv3x3 (no
    bias) -> BN(out) -> conv3x3 (no bias), plus a 1x1 shortcut conv (no bias) where stride or
    channels change (the first block of stages 2-4, where both do); Linear(8k -> classes)."""
    out = [conv(3, k, 3, False)]
    for c_in, planes in resnet_blocks(k):
        out += [batchnorm(c_in), conv(c_in, planes, 3, False)]
        out += [batchnorm(planes), conv(planes, planes, 3, False)]
        if c_in != planes:
            out.append(conv(c_in, planes, 1, False))
    return out + [linear(8 * k, classes)]


def n_params_of_experiment(name: str, width: int, batchnorm: bool) -> int:
    """Parameters of the run the pipeline builds for an experiment with `model.batchnorm`."""
    raw = {
        "dataset": {"name": "cifar10", "n_train": 100, "n_test": 10},
        "model": {"name": name, "batchnorm": batchnorm},
        "widths": [width],
        "regularizers": {"none": {}},
        "seeds": [0],
    }
    exp = config.validate({"experiments": {"e": raw}}, SCHEMA)["experiments"]["e"]
    (run,) = config.runs(exp)
    assert run.batchnorm == batchnorm and run.regularizer == "none"
    return models.n_params(exp["model"], CIFAR, 10, width, run.batchnorm)


@pytest.mark.parametrize("width", [1, 4, 10, 64])
def test_cnn5_with_architecture_batchnorm_is_mcnn_bn(width):
    assert n_params_of_experiment("cnn5", width, True) == sum(mcnn_bn_layers(width))


@pytest.mark.parametrize("width", [1, 4, 10, 64])
def test_preact_resnet18_with_architecture_batchnorm_is_resnet18k(width):
    assert n_params_of_experiment("preact_resnet18", width, True) == sum(resnet18k_layers(width))


@pytest.mark.parametrize("width", [1, 4, 10, 64])
def test_without_batchnorm_only_the_normalization_layers_are_missing(width):
    cnn_bn = 2 * (width + 2 * width + 4 * width + 8 * width)
    assert n_params_of_experiment("cnn5", width, False) == sum(mcnn_bn_layers(width)) - cnn_bn
    # Each block normalizes its input and its middle: 16 BN layers of the stage widths.
    resnet_bn = 2 * sum(c_in + c_out for c_in, c_out in resnet_blocks(width))
    assert (
        n_params_of_experiment("preact_resnet18", width, False)
        == sum(resnet18k_layers(width)) - resnet_bn
    )


def test_published_sizes():
    # Nakkiran et al.'s CNN at c = 64 and the standard ResNet18 on CIFAR-10 (k = 64).
    assert sum(mcnn_bn_layers(64)) == 1_558_026
    assert n_params_of_experiment("cnn5", 64, False) == 1_556_106
    assert sum(resnet18k_layers(64)) == 11_171_146


def test_architecture_batchnorm_is_in_every_variant_and_group():
    raw = {
        "dataset": {"name": "cifar10", "n_train": 100, "n_test": 10},
        "model": {"name": "cnn5", "batchnorm": True},
        "widths": [2, 4],
        "regularizers": {"none": {}, "l2": {"weight_decay": 1.0e-3}, "bn": {"batchnorm": True}},
        "seeds": [0, 1],
    }
    exp = config.validate({"experiments": {"e": raw}}, SCHEMA)["experiments"]["e"]
    assert all(r.batchnorm for r in config.runs(exp))
    # One network shape per width: all variants train together.
    assert sorted(config.groups(exp)) == ["width~2_norm~batch", "width~4_norm~batch"]
    plain = {**raw, "model": {"name": "cnn5"}}
    exp = config.validate({"experiments": {"e": plain}}, SCHEMA)["experiments"]["e"]
    assert [r.batchnorm for r in config.runs(exp) if r.width == 2] == [False] * 4 + [True] * 2

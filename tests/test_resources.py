"""Resource requests for training jobs grow with the work and cover what was measured."""

import math

import pytest
import torch
import yaml
from torch import nn

from doubledescent import config, packing, resources
from tests import test_conv_models
from tests.conftest import REPO, SCHEMA

DEFAULT = config.validate(yaml.safe_load((REPO / "config.yaml").read_text()), SCHEMA)
EXP = DEFAULT["experiments"]["mnist1d_mlp"]


def test_runtime_grows_with_width_and_runs_and_covers_a_measurement():
    small, wide = (resources.train_runtime_min(EXP, w, 9) for w in (2, 300))
    assert resources.STARTUP_MIN <= small < wide
    assert resources.train_runtime_min(EXP, 300, 3) < wide
    # Measured: width 300, 9 runs, 500 epochs took 1.82 s/epoch = 15 min on one thread.
    assert wide >= 2 * 15


def test_memory_covers_the_measured_peak_and_cuda():
    # Measured peak RSS: ~970 MB for width 300 with 9 runs.
    assert resources.train_mem_mb(EXP, 300, 9) >= 1.2 * 970
    cpu, gpu = (resources.train_mem_mb(EXP, 300, 9, gpu=g) for g in (False, True))
    assert gpu > cpu


def test_priority_orders_jobs_by_cost():
    # Longest first: a wider group, or one with more runs, starts before a cheaper one.
    p = {(w, n): resources.train_priority(EXP, w, n) for w in (2, 47, 300) for n in (3, 9)}
    assert p[300, 9] > p[300, 3] > p[47, 9] > p[47, 3] > p[2, 9] >= p[2, 3] >= 0


def test_a_sample_wise_sweep_is_costed_per_size_and_holds_its_largest_set():
    sizes = {**EXP, "dataset": {**EXP["dataset"], "n_train": [1000, 4000]}}
    largest = {**EXP, "dataset": {**EXP["dataset"], "n_train": 4000}}
    assert resources.train_seconds(sizes, 300, 9, 1000) == pytest.approx(
        resources.train_seconds(largest, 300, 9) / 4
    )
    assert resources.train_seconds(sizes, 300, 9) == resources.train_seconds(largest, 300, 9)
    assert resources.train_mem_mb(sizes, 300, 9) == resources.train_mem_mb(largest, 300, 9)


def conv_experiment(model: str, dataset: str, epochs: int = 100) -> dict:
    exp = {
        "dataset": {"name": dataset, "n_train": 50000, "n_test": 10000},
        "model": {"name": model},
        "widths": [8],
        "regularizers": {"none": {}},
        "seeds": [0],
        "training": {"batch_size": 128, "epochs": epochs},
    }
    return config.validate({"experiments": {"e": exp}}, SCHEMA)["experiments"]["e"]


def counted_conv_macs(module, shape) -> int:
    """Multiply-adds of a plain module's convolutions on one sample, counted with hooks."""
    total = []

    def hook(conv, inputs, out):
        total.append(out[0].numel() * conv.in_channels * math.prod(conv.kernel_size))

    handles = [
        m.register_forward_hook(hook)
        for m in module.modules()
        if isinstance(m, (nn.Conv1d, nn.Conv2d))
    ]
    module.eval()
    module(torch.zeros(1, *shape), lambda h: h)
    for h in handles:
        h.remove()
    return sum(total)


@pytest.mark.parametrize(
    "model,dataset,shape",
    [
        ("cnn5", "cifar10", (3, 32, 32)),
        ("cnn5", "mnist", (1, 28, 28)),
        ("preact_resnet18", "cifar10", (3, 32, 32)),
        ("mnist1d_cnn", "mnist1d", (1, 40)),
    ],
)
@pytest.mark.parametrize("width", [1, 5, 16])
def test_conv_macs_match_a_count_on_the_plain_module(model, dataset, shape, width):
    ref = (
        test_conv_models.RefCNN5(shape[0], width, 10, batchnorm=False)
        if model == "cnn5"
        else test_conv_models.reference(model, width, batchnorm=False)
    )
    expected = counted_conv_macs(ref, shape)
    assert resources.forward_macs(conv_experiment(model, dataset), width) == expected


def test_gpu_runtime_of_a_resnet_is_hours_and_covers_its_flops():
    exp = conv_experiment("preact_resnet18", "cifar10", epochs=4000)
    minutes = resources.train_runtime_min(exp, 64, 1, gpu=True)
    # The standard ResNet18 on CIFAR-10: ~0.56 GMAC forward per image.
    assert minutes * 60 >= 6 * 0.55e9 * 50000 * 4000 / resources.GPU_FLOP_PER_SECOND
    assert resources.train_runtime_min(exp, 8, 1, gpu=True) < minutes


def test_memory_holds_the_dataset():
    exp = conv_experiment("cnn5", "cifar10")
    floats = 60000 * 3072
    assert resources.train_mem_mb(exp, 2, 1, gpu=True) >= resources.BASE_MEM_MB + 4 * floats / 1e6


def test_a_pack_is_costed_at_its_widest_width_and_pays_a_gpus_steps_once():
    groups = config.groups(EXP)
    pack = packing.jobs(EXP, True)["pack"]
    assert resources.job_size(pack) == (300, 228, None)
    assert resources.job_size(groups["width~47_norm~batch"]) == (47, 3, None)

    def seconds(runs, gpu):
        width, n_runs, n_train = resources.job_size(runs)
        return resources.train_seconds(EXP, width, n_runs, n_train, gpu=gpu)

    # On a CPU the padding is arithmetic like any other; on a GPU the per-step launch
    # overhead of 38 jobs is paid once.
    assert seconds(pack, False) > sum(seconds(r, False) for r in groups.values())
    assert seconds(pack, True) < sum(seconds(r, True) for r in groups.values()) / 10

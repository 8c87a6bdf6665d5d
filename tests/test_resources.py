"""Resource requests for training jobs grow with the work and cover what was measured."""

import inspect
import math

import pytest
import torch
import yaml
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from doubledescent import architectures, config, data, models, packing, resources
from tests import test_conv_models
from tests.conftest import REPO, SCHEMA

DEFAULT = config.validate(yaml.safe_load((REPO / "config.yaml").read_text()), SCHEMA)
EXP = DEFAULT["experiments"]["mnist1d_mlp"]
BUILD_ARGS = ("n_runs", "input_shape", "num_classes", "width", "batchnorm", "spec")


def test_runtime_grows_with_width_and_runs_and_covers_a_measurement():
    small, wide = (resources.train_runtime_min(EXP, w, 9) for w in (2, 300))
    assert resources.STARTUP_MIN <= small < wide
    assert resources.train_runtime_min(EXP, 300, 3) < wide
    # docs/benchmarks.md: the default's longest job (width 300, 9 runs) took 170 s; a
    # request covers twice that, on top of the job's startup.
    assert (wide - resources.STARTUP_MIN) * 60 >= 2 * 170


# docs/benchmarks.md, 2026-11-24: seconds per width of the default experiment's two groups
# (9 runs, and 3 with batchnorm), 20 epochs, one evaluation, one thread per job.
MEASURED_20_EPOCHS = {
    2: 0.5,
    4: 0.5,
    9: 0.6,
    16: 0.6,
    21: 0.7,
    27: 0.8,
    36: 0.8,
    47: 1.1,
    80: 1.3,
    104: 1.8,
    135: 2.8,
    177: 3.6,
    230: 6.0,
    300: 9.5,
}


@pytest.mark.parametrize("width,measured", MEASURED_20_EPOCHS.items())
def test_runtime_estimate_is_within_2x_of_the_measured_time(width, measured):
    exp = {**EXP, "training": {**EXP["training"], "epochs": 20, "eval_epochs": [20]}}
    estimate = resources.train_seconds(exp, width, 9) + resources.train_seconds(exp, width, 3)
    assert measured / 2 <= estimate <= 2 * measured


def test_the_longest_default_job_is_estimated_within_2x():
    # docs/benchmarks.md: width 300, 9 runs, 500 epochs, 20 evaluations: 170 s.
    assert 170 / 2 <= resources.train_seconds(EXP, 300, 9) <= 2 * 170


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
    smallest = {**EXP, "dataset": {**EXP["dataset"], "n_train": 1000}}
    assert resources.train_seconds(sizes, 300, 9, 1000) == resources.train_seconds(smallest, 300, 9)
    assert resources.train_seconds(sizes, 300, 9, 1000) < resources.train_seconds(sizes, 300, 9) / 3
    assert resources.train_seconds(sizes, 300, 9) == resources.train_seconds(largest, 300, 9)
    assert resources.train_mem_mb(sizes, 300, 9) == resources.train_mem_mb(largest, 300, 9)


def conv_experiment(model: str, dataset: str, epochs: int = 100, n: tuple = (50000, 10000)) -> dict:
    exp = {
        "dataset": {"name": dataset, "n_train": n[0], "n_test": n[1]},
        "model": {"name": model},
        "widths": [8],
        "regularizers": {"none": {}},
        "seeds": [0],
        "training": {"batch_size": 128, "epochs": epochs},
    }
    return config.validate({"experiments": {"e": exp}}, SCHEMA)["experiments"]["e"]


def counted_macs(module, shape, *args) -> int:
    """Multiply-adds of a module's forward pass on one sample, counted by torch (its FLOP
    counter counts 2 per multiply-add of matmuls and convolutions)."""
    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.zeros(1, *shape), *args)
    return counter.get_total_flops() // 2


def pairings() -> list[tuple[str, str]]:
    """Every model x dataset pairing a config accepts."""
    out = []
    for model in architectures.FAMILIES:
        for dataset in data.SOURCES:
            try:
                config._check_model_fits_data("e", model, dataset)
            except config.ConfigError:
                continue
            out.append((model, dataset))
    return out


def test_every_model_has_pairings():
    assert {m for m, _ in pairings()} == set(architectures.FAMILIES)
    assert len(pairings()) == 6 + 5 + 5 + 1  # mlp: any; the image nets: 5; mnist1d_cnn: 1


@pytest.mark.parametrize("model,dataset", pairings())
@pytest.mark.parametrize("width", [1, 7])
def test_macs_match_a_count_of_the_model_that_trains(model, dataset, width):
    """The stacked model of one run, as training builds it, on one sample of the dataset."""
    source = data.SOURCES[dataset]
    exp = conv_experiment(model, dataset, n=(100, 100))
    shape = models.input_shape(model, source.shape)
    stacked = models.build(exp["model"], 1, shape, source.num_classes, width, False)
    assert resources.forward_macs(exp, width) == counted_macs(stacked, shape)


def plain_mlp(in_features: int, width: int, depth: int, classes: int) -> nn.Module:
    sizes = [in_features] + [width] * depth + [classes]
    layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    return nn.Sequential(*(m for layer in layers for m in (layer, nn.ReLU())))


@pytest.mark.parametrize("dataset", list(data.SOURCES))
@pytest.mark.parametrize("depth", [1, 3])
def test_mlp_macs_on_every_dataset_match_a_plain_mlp(dataset, depth):
    """Images flatten to C*H*W inputs: Belkin's MNIST MLP has 784 of them, not 100."""
    source = data.SOURCES[dataset]
    exp = {
        **conv_experiment("mlp", dataset, n=(100, 100)),
        "model": {"name": "mlp", "depth": depth},
    }
    ref = plain_mlp(math.prod(source.shape), 12, depth, source.num_classes)
    assert resources.forward_macs(exp, 12) == counted_macs(ref, (math.prod(source.shape),))


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
    expected = counted_macs(ref, shape, lambda h: h)
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


def test_every_model_has_its_costs():
    # Each registered builder takes exactly the registry's keyword-only arguments.
    for family in architectures.FAMILIES.values():
        params = inspect.signature(architectures.load(family.builder)).parameters.values()
        keyword_only = [(name, inspect.Parameter.KEYWORD_ONLY) for name in BUILD_ARGS]
        assert [(p.name, p.kind) for p in params] == keyword_only, family.name


def test_an_mlp_on_the_cpu_evaluates_in_chunks_whose_activations_fit_the_budget():
    mlp = {"name": "mlp", "depth": 2}
    # The default sweep's widest group: 9 runs x 3 layers x 300 floats a row.
    assert resources.eval_rows(mlp, 300, 9, "cpu") == 128
    assert resources.eval_rows(mlp, 16, 9, "cpu") == resources.EVAL_CHUNK
    for width in (47, 80, 104, 135, 177, 230):
        rows = resources.eval_rows(mlp, width, 9, "cpu")
        per_row = 4 * 9 * 3 * width
        # The largest power of two of rows that fits: twice as many would not.
        assert rows & (rows - 1) == 0
        assert rows * per_row <= resources.EVAL_BYTES < 2 * rows * per_row, width
    # Not below the floor, however wide; a GPU and the conv nets keep the memory estimate's.
    assert resources.eval_rows(mlp, 4000, 9, "cpu") == resources.EVAL_MIN_ROWS
    assert resources.eval_rows(mlp, 300, 9, "cuda") == resources.EVAL_CHUNK
    assert resources.eval_rows({"name": "cnn5"}, 64, 3, "cpu") == resources.EVAL_CHUNK

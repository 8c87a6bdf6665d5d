"""The stacked conv nets against independent plain modules (nn.Conv2d, nn.BatchNorm2d, ...),
one per run, trained with torch.optim in float64 from the same initialization, minibatches
and dropout masks; and their parameter counts against formulas and the plain modules."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from doubledescent import config, data, models, train
from doubledescent.models.layers import ChannelBatchNorm, GroupedConv, StackedLinear
from tests.conftest import SCHEMA
from tests.test_train import ReferenceDropout, reference_loss, reference_optimizer


class RefCNN5(nn.Module):
    """Nakkiran et al.'s 5-layer CNN as written with torch.nn."""

    def __init__(self, c_in, c, classes, batchnorm):
        super().__init__()
        chans = [c_in, c, 2 * c, 4 * c, 8 * c]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(chans, chans[1:]))
        self.bns = nn.ModuleList(
            nn.BatchNorm2d(b) if batchnorm else nn.Identity() for b in chans[1:]
        )
        self.fc = nn.Linear(8 * c, classes)

    def forward(self, x, drop):
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            x = F.relu(bn(conv(x)))
            x = nn.MaxPool2d(2)(x) if i > 0 else x
            x = drop(x)
        return self.fc(nn.AdaptiveMaxPool2d(1)(x).flatten(1))


class RefConvBase(nn.Module):
    """Greydanus & Kobak's MNIST-1D ConvBase, with optional BatchNorm1d."""

    def __init__(self, c, classes, batchnorm, length=40):
        super().__init__()
        self.conv1 = nn.Conv1d(1, c, 5, stride=2, padding=1)
        self.bn1 = nn.BatchNorm1d(c) if batchnorm else nn.Identity()
        self.conv2 = nn.Conv1d(c, c, 3, stride=2, padding=1)
        self.bn2 = nn.BatchNorm1d(c) if batchnorm else nn.Identity()
        self.conv3 = nn.Conv1d(c, c, 3, stride=2, padding=1)
        self.bn3 = nn.BatchNorm1d(c) if batchnorm else nn.Identity()
        self.linear = nn.Linear(c * 5, classes)  # 40 -> 19 -> 10 -> 5

    def forward(self, x, drop):
        x = drop(F.relu(self.bn1(self.conv1(x))))
        x = drop(F.relu(self.bn2(self.conv2(x))))
        x = drop(F.relu(self.bn3(self.conv3(x))))
        return self.linear(x.view(x.shape[0], -1))


class RefPreActBlock(nn.Module):
    """kuangliu/pytorch-cifar's PreActBlock, dropout between the convolutions."""

    def __init__(self, in_planes, planes, stride, batchnorm):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes) if batchnorm else nn.Identity()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes) if batchnorm else nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)
            )

    def forward(self, x, drop):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(drop(F.relu(self.bn2(out))))
        return out + shortcut


class RefPreActResNet18(nn.Module):
    def __init__(self, k, classes, batchnorm):
        super().__init__()
        self.conv1 = nn.Conv2d(3, k, 3, stride=1, padding=1, bias=False)
        blocks, in_planes = [], k
        for planes, stride in [(k, 1), (2 * k, 2), (4 * k, 2), (8 * k, 2)]:
            for s in (stride, 1):
                blocks.append(RefPreActBlock(in_planes, planes, s, batchnorm))
                in_planes = planes
        self.layers = nn.ModuleList(blocks)
        self.linear = nn.Linear(8 * k, classes)

    def forward(self, x, drop):
        out = self.conv1(x)
        for block in self.layers:
            out = block(out, drop)
        out = F.adaptive_avg_pool2d(out, 1)
        return self.linear(out.view(out.size(0), -1))


SAMPLE = {"cnn5": (3, 8, 8), "preact_resnet18": (3, 8, 8), "mnist1d_cnn": (1, 40)}
DATASET = {"cnn5": "cifar10", "preact_resnet18": "cifar10", "mnist1d_cnn": "mnist1d"}
WIDTH = {"cnn5": 2, "preact_resnet18": 2, "mnist1d_cnn": 4}


def reference(name, width, batchnorm):
    if name == "cnn5":
        return RefCNN5(3, width, 10, batchnorm)
    if name == "mnist1d_cnn":
        return RefConvBase(width, 10, batchnorm)
    return RefPreActResNet18(width, 10, batchnorm)


# Stacked layer kind -> the plain layers it stands for.
KINDS = {
    GroupedConv: (nn.Conv1d, nn.Conv2d),
    StackedLinear: (nn.Linear,),
    ChannelBatchNorm: (nn.BatchNorm1d, nn.BatchNorm2d),
}


def paired_layers(stacked, ref):
    """The stacked model's layers beside the plain module's, kind by kind in definition
    order (a wrong pairing shows up as a shape mismatch or different numbers)."""
    pairs = []
    for kind, plain in KINDS.items():
        a = [m for m in stacked.modules() if isinstance(m, kind)]
        b = [m for m in ref.modules() if isinstance(m, plain)]
        assert len(a) == len(b)
        pairs += zip(a, b)
    return pairs


def run_tensors(layer, i):
    """Run i's parameters and batchnorm statistics, shaped as the plain layer holds them."""
    if isinstance(layer, StackedLinear):
        return {"weight": layer.weight[i].T, "bias": layer.bias[i, 0]}
    names = ["weight", "bias"] + (
        ["running_mean", "running_var"] if isinstance(layer, ChannelBatchNorm) else []
    )
    return {n: getattr(layer, n)[i] for n in names if getattr(layer, n) is not None}


def copy_run(stacked, ref, i):
    with torch.no_grad():
        for s, r in paired_layers(stacked, ref):
            for name, value in run_tensors(s, i).items():
                getattr(r, name).copy_(value)


def assert_run_equal(stacked, ref, i, grads=False, wd=0.0, atol=1e-11):
    for s, r in paired_layers(stacked, ref):
        for name, value in run_tensors(s, i).items():
            expected = getattr(r, name)
            if grads:
                if not isinstance(expected, nn.Parameter):
                    continue
                # The stacked gradient holds the coupled decay term wd * W of decayed weights.
                decayed = name == "weight" and not isinstance(s, ChannelBatchNorm)
                expected = expected.grad + (wd * expected.detach() if decayed else 0)
                value = run_tensors_grad(s, i)[name]
            torch.testing.assert_close(value, expected, rtol=1e-9, atol=atol)


def run_tensors_grad(layer, i):
    if isinstance(layer, StackedLinear):
        return {"weight": layer.weight.grad[i].T, "bias": layer.bias.grad[i, 0]}
    return {
        n: getattr(layer, n).grad[i] for n in ("weight", "bias") if getattr(layer, n) is not None
    }


def image_data(name, n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *SAMPLE[name])).astype(np.float32)
    y = rng.integers(0, 10, n)
    return data.Arrays(
        x_train=x, y_train=y, x_test=x[:8], y_test=y[:8], y_train_clean=y, num_classes=10
    )


def experiment(name, regs, training=None):
    exp = {
        "dataset": {"name": DATASET[name], "n_train": 48, "n_test": 8},
        "model": {"name": name},
        "widths": [WIDTH[name]],
        "regularizers": regs,
        "seeds": [0, 1],
        "training": {
            "lr": 0.05,
            "batch_size": 16,
            "epochs": 2,
            "eval_epochs": [2],
            **(training or {}),
        },
    }
    return config.validate({"experiments": {"t": exp}}, SCHEMA)["experiments"]["t"]


REGS = {
    False: {"none": {}, "l2_dropout": {"weight_decay": 0.01, "dropout": 0.2}},
    True: {
        "bn": {"batchnorm": True},
        "bn_all": {"batchnorm": True, "dropout": 0.25, "weight_decay": 0.02},
    },
}


def stacked_group(name, batchnorm, training=None):
    exp = experiment(name, REGS[batchnorm], training)
    (gid,) = config.groups(exp)
    spec = config.group_spec("t", exp, gid)
    runs = list(spec.runs)
    arrays = image_data(name)
    shape = train.input_shape(spec, arrays)
    group = train.make_group(spec, runs, shape, 10, "cpu", torch.float64)
    return group, train.Tensors.from_arrays(arrays, "cpu", torch.float64, shape), spec


def references(group, name):
    refs = []
    for i, run in enumerate(group.runs):
        ref = reference(name, run.width, run.batchnorm).double()
        copy_run(group.model, ref, i)
        refs.append(ref)
    return refs


def train_reference(ref, run, x, y, tr):
    opt = reference_optimizer(ref, run, tr)
    order, drop = train.generator(run.seed, "order"), ReferenceDropout(run)
    ref.train()
    for _ in range(tr.epochs):
        perm = torch.randperm(len(y), generator=order)
        for s in range(0, len(y), tr.batch_size):
            idx = perm[s : s + tr.batch_size]
            opt.zero_grad()
            reference_loss(ref, run, ref(x[idx], drop), y[idx], tr).backward()
            opt.step()


NAMES = ["cnn5", "mnist1d_cnn", "preact_resnet18"]


@pytest.mark.parametrize("batchnorm", [False, True], ids=["plain", "batchnorm"])
@pytest.mark.parametrize("name", NAMES)
def test_first_step_gradients_equal_separate_models(name, batchnorm):
    group, d, _ = stacked_group(name, batchnorm)
    refs = references(group, name)
    idx = torch.arange(16).expand(len(refs), 16)
    train.train_step(group, d.x_train[idx], d.y_train[idx])
    for i, (ref, run) in enumerate(zip(refs, group.runs)):
        ref.train()
        F.cross_entropy(ref(d.x_train[:16], ReferenceDropout(run)), d.y_train[:16]).backward()
        assert_run_equal(group.model, ref, i, grads=True, wd=run.weight_decay)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("batchnorm", [False, True], ids=["plain", "batchnorm"])
@pytest.mark.parametrize("name", NAMES)
def test_vectorized_training_equals_separate_models(name, batchnorm, optimizer):
    # A conv bias before BN has a true gradient of 0, so its computed one is rounding noise,
    # which Adam scales up to steps of up to lr: compare Adam's parameters at a usual lr and
    # with an absolute tolerance far below lr but above that noise.
    lr, atol = {"sgd": (0.05, 1e-11), "adam": (1e-3, 1e-9)}[optimizer]
    group, d, spec = stacked_group(name, batchnorm, {"optimizer": optimizer, "lr": lr})
    refs = references(group, name)
    tr = spec.training
    for _ in range(tr.epochs):
        train.train_epoch(group, d, tr.batch_size)
    for i, (ref, run) in enumerate(zip(refs, group.runs)):
        train_reference(ref, run, d.x_train, d.y_train, tr)
        assert_run_equal(group.model, ref, i, atol=atol)
    # Evaluation on a shared batch: each run's logits are its own module's.
    logits = train.predict(group.model, d.x_test)
    for i, ref in enumerate(refs):
        ref.eval()
        torch.testing.assert_close(logits[i], ref(d.x_test, lambda h: h), rtol=1e-9, atol=atol)


def cnn5_params(c, c_in, k, bn):
    return 378 * c * c + 9 * c_in * c + 15 * c + 8 * c * k + k + (30 * c if bn else 0)


def resnet18_params(k, c_in, classes, bn):
    # 3x3 convs: 298 k^2 in-out products, 1x1 shortcuts 42 k^2; 53 k channels of BN.
    return (
        2682 * k * k
        + 42 * k * k
        + 9 * c_in * k
        + 8 * k * classes
        + classes
        + (106 * k if bn else 0)
    )


def mnist1d_cnn_params(c, bn):
    return 6 * c * c + 8 * c + 50 * c + 10 + (6 * c if bn else 0)


@pytest.mark.parametrize("bn", [False, True])
@pytest.mark.parametrize("width", [1, 3, 16])
def test_param_counts_match_formulas_and_plain_modules(width, bn):
    cases = [
        ("cnn5", (3, 32, 32), cnn5_params(width, 3, 10, bn)),
        ("preact_resnet18", (3, 32, 32), resnet18_params(width, 3, 10, bn)),
        ("mnist1d_cnn", (1, 40), mnist1d_cnn_params(width, bn)),
    ]
    for name, shape, formula in cases:
        plain = sum(p.numel() for p in reference(name, width, bn).parameters())
        assert models.n_params({"name": name}, shape, 10, width, bn) == formula == plain, name


def test_standard_preact_resnet18_has_its_known_size():
    # kuangliu/pytorch-cifar's PreActResNet18 on CIFAR-10: 11,171,146 parameters.
    assert models.n_params({"name": "preact_resnet18"}, (3, 32, 32), 10, 64, True) == 11171146


@pytest.mark.parametrize("name", NAMES)
def test_shared_input_broadcasts_to_all_runs(name):
    group, d, _ = stacked_group(name, True)
    group.model.eval()
    x = d.x_train[:5]
    shared = group.model(x)
    assert shared.shape == (len(group.runs), 5, 10)
    torch.testing.assert_close(shared, group.model(x.expand(len(group.runs), *x.shape)))


def test_cnn5_takes_28x28_images():
    net = models.build({"name": "cnn5"}, 2, (1, 28, 28), 10, 3, True)
    assert net(torch.randn(4, 1, 28, 28)).shape == (2, 4, 10)


def test_init_is_per_run_within_torch_bounds_and_seeded():
    group, _, _ = stacked_group("cnn5", False)
    w = group.model.convs[1].weight  # fan_in = 2 channels x 3 x 3
    assert w.abs().max() <= 1 / 18**0.5 and w.abs().max() > 0.8 / 18**0.5
    by_seed = {run.seed: i for i, run in enumerate(group.runs)}
    same_seed = [i for i, run in enumerate(group.runs) if run.seed == 0]
    assert torch.equal(w[same_seed[0]], w[same_seed[1]])  # paired across variants
    assert not torch.equal(w[by_seed[0]], w[by_seed[1]])

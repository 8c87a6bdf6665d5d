"""On-device augmentation against a per-sample reference (pad, slice, flip) with the same
random draws; off by default; labels untouched; its stream checkpointed."""

from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F

from doubledescent import augment, config, train
from doubledescent.specs import Augment
from tests.conftest import SCHEMA
from tests.test_conv_models import image_data

ON = Augment(crop_padding=2, hflip=True)


def reference(x, gen, spec):
    """One run's batch (B, C, H, W), one sample at a time, as torchvision's RandomCrop(padding)
    and RandomHorizontalFlip would transform it given these draws."""
    dy, dx, flip = augment.draw(gen, x.shape[0], spec, x.device)
    p, (h, w) = spec.crop_padding, x.shape[-2:]
    out = []
    for img, i, j, f in zip(x, dy.tolist(), dx.tolist(), flip.tolist()):
        crop = F.pad(img, (p, p, p, p))[:, i : i + h, j : j + w]
        out.append(torch.flip(crop, dims=[-1]) if f else crop)
    return torch.stack(out)


@pytest.mark.parametrize(
    "spec", [ON, Augment(crop_padding=3, hflip=False), Augment(crop_padding=0, hflip=True)]
)
def test_augment_equals_per_sample_reference(spec):
    x = torch.randn(3, 17, 2, 5, 6)  # runs, batch, channels, a non-square image
    seeds = [0, 1, 0]
    got = augment.augment(x, [train.generator(s, "augment") for s in seeds], spec)
    assert got.shape == x.shape
    for r, s in enumerate(seeds):
        torch.testing.assert_close(
            got[r], reference(x[r], train.generator(s, "augment"), spec), rtol=0, atol=0
        )


def test_augment_moves_and_flips_per_sample():
    x = torch.arange(64.0).view(1, 1, 1, 8, 8).expand(1, 200, 1, 8, 8)
    got = augment.augment(x, [train.generator(0, "augment")], ON)
    distinct = {tuple(img.flatten().tolist()) for img in got[0]}
    assert len(distinct) > 20  # 25 crops x 2 flips, drawn per sample
    flipped = got[0, :, 0, 2:6, 2:6] == x[0, 0, 0, 2:6, 2:6].flip(-1)
    assert flipped.flatten(1).all(1).any()  # a flip of an unshifted crop occurs
    assert (got == 0).any()  # zero padding enters at the borders


def experiment(training=None, model="cnn5"):
    exp = {
        "dataset": {"name": "cifar10", "n_train": 48, "n_test": 8},
        "model": {"name": model},
        "widths": [2],
        "regularizers": {"none": {}},
        "seeds": [0, 1],
        "training": {"batch_size": 16, "epochs": 1, "eval_epochs": [1], **(training or {})},
    }
    return config.validate({"experiments": {"t": exp}}, SCHEMA)["experiments"]["t"]


def captured_batches(exp, monkeypatch):
    """The (x, y) batches that one epoch of the trainer feeds to train_step."""
    spec = config.group_spec("t", exp, "width~2_norm~none")
    arrays = image_data("cnn5")
    shape = train.input_shape(spec, arrays)
    group = train.make_group(spec, list(spec.runs), shape, 10, "cpu")
    d = train.Tensors.from_arrays(arrays, "cpu", shape=shape)
    seen = []
    monkeypatch.setattr(train, "train_step", lambda g, xb, yb: seen.append((xb, yb)))
    train.train_epoch(group, d, 16)
    return group, d, seen


def test_trainer_augments_inputs_and_keeps_labels(monkeypatch):
    group, d, seen = captured_batches(experiment({"augment": asdict(ON)}), monkeypatch)
    order = [train.generator(r.seed, "order") for r in group.runs]
    aug = [train.generator(r.seed, "augment") for r in group.runs]
    perms = torch.stack([torch.randperm(48, generator=g) for g in order])
    for k, (xb, yb) in enumerate(seen):
        idx = perms[:, 16 * k : 16 * (k + 1)]
        torch.testing.assert_close(yb, d.y_train[idx], rtol=0, atol=0)
        for r in range(len(group.runs)):
            torch.testing.assert_close(
                xb[r], reference(d.x_train[idx[r]], aug[r], ON), rtol=0, atol=0
            )


def test_augmentation_is_off_by_default(monkeypatch):
    exp = experiment()
    assert exp["training"]["augment"] == {"crop_padding": 0, "hflip": False}
    group, d, seen = captured_batches(exp, monkeypatch)
    perms = torch.stack(
        [torch.randperm(48, generator=train.generator(r.seed, "order")) for r in group.runs]
    )
    torch.testing.assert_close(seen[0][0], d.x_train[perms[:, :16]], rtol=0, atol=0)


def test_augmentation_needs_an_image_model():
    with pytest.raises(
        config.ConfigError,
        match=r"^config.experiments.t.training.augment: "
        r"crops and flips need an image model",
    ):
        experiment({"augment": asdict(ON)}, model="mlp")

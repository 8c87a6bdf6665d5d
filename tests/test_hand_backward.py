"""The MLP's hand-written training step (models.mlp train_forward/train_backward) against
autograd's on the same groups: bit for bit in float32, parameters, batchnorm statistics and
optimizer state, for every regularizer that it takes (batchnorm before the ReLU included),
both losses, both optimizers, the narrow head, one to three hidden layers and a zero-padded
pack; and where the trainer takes it."""

import pytest
import torch

from doubledescent import config, packing, train
from tests.test_train import VARIANTS, experiment

CASES = {
    "sgd": ({}, {}, VARIANTS),
    # fan-in >= 64 into 10 classes: the head takes layers.NarrowLinear
    "narrow_head_depth3": ({}, {"depth": 3}, VARIANTS),
    "depth1_glorot": ({}, {"depth": 1, "init": "glorot_uniform"}, VARIANTS),
    "adam_decoupled_all": (
        {"optimizer": "adam", "lr": 0.01, "l2_mode": "decoupled", "decay": "all"},
        {},
        VARIANTS,
    ),
    "mse_penalty": ({"loss": "mse", "l2_mode": "penalty"}, {}, VARIANTS),
    "label_smoothing": ({}, {}, {"ls": {"label_smoothing": 0.2, "dropout": 0.2}, "none": {}}),
}
WIDTHS = {"narrow_head_depth3": (70,)}
EPOCHS = 3


def trained(spec, arrays, by_hand: bool) -> train.Group:
    group = train.make_group(spec, list(spec.runs), (40,), 10, "cpu")
    assert group.by_hand, "the trainer should take the hand-written step here"
    group.by_hand = by_hand
    data = train.Tensors.from_arrays(arrays, "cpu")
    for _ in range(EPOCHS):  # of 300 samples in batches of 64: a short last batch too
        train.train_epoch(group, data, spec.training.batch_size)
    return group


def state(group: train.Group) -> list[torch.Tensor]:
    opt = group.optimizer
    buffers = opt.momentum_buffers if isinstance(opt, train.optim.SGD) else opt.exp_avg_sqs
    model = group.model
    return [p.detach() for p in model.parameters()] + list(model.buffers()) + list(buffers)


def assert_same_as_autograd(spec, arrays):
    hand, auto = trained(spec, arrays, True), trained(spec, arrays, False)
    for a, b in zip(state(hand), state(auto), strict=True):
        assert torch.equal(a, b), (a - b).abs().max()


@pytest.mark.parametrize("case", CASES)
def test_the_hand_written_step_is_autograds_bit_for_bit(small_data, case):
    training, model, regs = CASES[case]
    exp = experiment(regs, widths=WIDTHS.get(case, (12,)), training=training, model=model)
    for gid in config.groups(exp):
        assert_same_as_autograd(config.group_spec("t", exp, gid), small_data)


@pytest.mark.parametrize("norms", ["plain", "batchnorm", "mixed"])
def test_a_padded_pack_too(small_data, norms):
    """A pack of plain groups, of batchnorm groups, and of both (models.padded's switched
    batchnorm)."""
    keep = {"plain": [False], "batchnorm": [True], "mixed": [False, True]}[norms]
    regs = {name: v for name, v in VARIANTS.items() if v.get("batchnorm", False) in keep}
    exp = experiment(regs, widths=(3, 7, 70))
    assert_same_as_autograd(packing.job_spec("t", exp, "pack"), small_data)


def test_where_the_trainer_takes_it():
    def by_hand(regs, training=None, mask=None, model=None) -> bool:
        exp = experiment(regs, training=training, model=model)
        (gid,) = config.groups(exp)
        spec = config.group_spec("t", exp, gid)
        g = train.make_group(spec, list(spec.runs), (40,), 10, "cpu")
        return train.trains_by_hand(g.model, mask or g.mask, g.bf16)

    assert by_hand({"dropout": {"dropout": 0.1}})
    assert by_hand({"bn": {"batchnorm": True, "dropout": 0.1}})
    # After the ReLU, batchnorm's output hides which units were dropped.
    after = {"batchnorm_position": "after_activation"}
    assert not by_hand({"bn": {"batchnorm": True}}, model=after)
    assert not by_hand({"none": {}}, training={"precision": "bf16"})  # autocast is autograd's
    # A regularizer's own mask source, without the in-place form, keeps autograd.
    assert not by_hand({"dropout": {"dropout": 0.1}}, mask=lambda shape: torch.ones(shape))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("labels", [(9, 100), (100,)])  # per-run labels, or shared
def test_the_written_out_cross_entropy_gradient_is_autograds(dtype, labels):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(9, 100, 10, dtype=dtype, generator=gen, requires_grad=True)
    y = torch.randint(0, 10, labels, generator=gen)
    loss = train.sample_losses(logits, y, "cross_entropy").sum() / 100
    (expected,) = torch.autograd.grad(loss, logits)
    assert torch.equal(train.cross_entropy_gradient(logits.detach(), y), expected)

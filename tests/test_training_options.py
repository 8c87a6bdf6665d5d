"""Training options against torch's own optimizers and modules on separate runs (float64, a few
steps, tiny widths)."""

import torch

from tests.test_train import assert_equals_separate_models, experiment, stacked_group

REGS = {"none": {}, "l2": {"weight_decay": 0.05}, "l2_dropout": {"weight_decay": 0.1,
                                                                  "dropout": 0.2},
        "bn_l2": {"batchnorm": True, "weight_decay": 0.05}}


def test_batchnorm_after_activation_equals_separate_models(small_data):
    exp = experiment(REGS, widths=(6,), seeds=(0,),
                     model={"batchnorm_position": "after_activation"})
    assert_equals_separate_models(exp, small_data, "width~6_norm~batch")


def test_batchnorm_position_changes_the_network(small_data):
    outs = []
    for position in ("before_activation", "after_activation"):
        exp = experiment({"bn": {"batchnorm": True}}, widths=(6,), seeds=(0,),
                         model={"batchnorm_position": position})
        group, data, _ = stacked_group(exp, small_data, "width~6_norm~batch")
        outs.append(group.model(data.x_train[:32]))
    assert not torch.allclose(*outs)

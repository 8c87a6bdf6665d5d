import pytest
import torch

from doubledescent import models
from doubledescent.models import layers
from doubledescent.models.layers import StackedBatchNorm
from doubledescent.models.mlp import StackedMLP

MLP = {"name": "mlp", "depth": 2, "batchnorm_position": "before_activation"}


@pytest.mark.parametrize("h", [2, 16, 47, 300])
def test_param_count_matches_formula_and_module(h):
    assert models.n_params(MLP, (40,), 10, h, False) == h * h + 52 * h + 10
    net = StackedMLP(3, 40, h, 2, 10)
    counted = sum(p.numel() for p in net.parameters()) // 3
    assert counted == h * h + 52 * h + 10


def test_batchnorm_only_in_batchnorm_variant():
    plain = StackedMLP(2, 40, 8, 2, 10, batchnorm=False)
    normed = StackedMLP(2, 40, 8, 2, 10, batchnorm=True)
    assert not any(isinstance(m, StackedBatchNorm) for m in plain.modules())
    assert sum(isinstance(m, StackedBatchNorm) for m in normed.modules()) == 2
    extra = sum(p.numel() for p in normed.parameters()) - sum(p.numel() for p in plain.parameters())
    assert extra == 2 * 2 * 8 * 2  # runs x layers x width x (scale, shift)
    assert models.n_params(MLP, (40,), 10, 8, True) == 8 * 8 + 52 * 8 + 10 + 32


def test_init_is_per_run_and_within_linear_bounds():
    net = StackedMLP(2, 40, 64, 2, 10)
    net.init_run(0, torch.Generator().manual_seed(1))
    net.init_run(1, torch.Generator().manual_seed(2))
    w = net.linears[0].weight
    assert w.abs().max() <= 1 / 40**0.5
    assert w[0].abs().max() > 0.9 / 40**0.5  # uses the whole range
    assert not torch.equal(w[0], w[1])
    again = StackedMLP(1, 40, 64, 2, 10)
    again.init_run(0, torch.Generator().manual_seed(1))
    assert torch.equal(again.linears[0].weight[0], w[0])


def test_shared_input_broadcasts_to_all_runs():
    net = StackedMLP(3, 40, 8, 2, 10)
    for i in range(3):
        net.init_run(i, torch.Generator().manual_seed(i))
    x = torch.randn(5, 40)
    shared = net(x)
    stacked = net(x.expand(3, 5, 40))
    assert shared.shape == (3, 5, 10)
    torch.testing.assert_close(shared, stacked)


def test_narrow_head_matches_the_plain_product_and_its_gradients():
    # A wide MLP's head (fan_in >= WIDE_IN, fan_out < NARROW_OUT) takes NarrowLinear: the same
    # values as baddbmm, and gradients that pass a finite-difference check.
    g = torch.Generator().manual_seed(0)
    h, w, b = (
        torch.randn(s, generator=g, dtype=torch.float64, requires_grad=True)
        for s in [(2, 5, layers.WIDE_IN), (2, layers.WIDE_IN, 3), (2, 1, 3)]
    )
    out = layers.linear(h, w, b)
    assert out.grad_fn.name().startswith("NarrowLinear")
    torch.testing.assert_close(out, torch.baddbmm(b, h, w), rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(layers.NarrowLinear.apply, (h, w, b))

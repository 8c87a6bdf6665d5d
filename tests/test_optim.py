"""doubledescent.optim against torch.optim: the same updates, bit for bit, and a state that
resumes exactly."""

import subprocess
import sys

import pytest
import torch

from doubledescent import optim
from tests.conftest import training_settings

SHAPES = [(3, 5, 4), (3, 1, 4), (3, 4)]
LRS = [0.1, 0.05, 0.05, 0.02, 0.01]  # a schedule: the rate changes between steps


def params_and_grads(seed: int):
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=g, dtype=torch.float32) for s in SHAPES]
    grads = [[torch.randn(s, generator=g) for s in SHAPES] for _ in LRS]
    return params, grads


def run(opt, params, grads, lrs, set_lr):
    for lr, step_grads in zip(lrs, grads):
        set_lr(opt, lr)
        opt.zero_grad()
        for p, gr in zip(params, step_grads):
            p.grad = gr.clone()
        opt.step()


def set_ours(opt, lr):
    opt.lr = lr


def set_torch(opt, lr):
    for group in opt.param_groups:
        group["lr"] = lr


CASES = {
    "sgd": (lambda p: optim.SGD(p, 0.1), lambda p: torch.optim.SGD(p, 0.1, fused=True)),
    "sgd_momentum": (
        lambda p: optim.SGD(p, 0.1, momentum=0.9),
        lambda p: torch.optim.SGD(p, 0.1, momentum=0.9, fused=True),
    ),
    "adam": (
        lambda p: optim.Adam(p, 0.1, (0.8, 0.99), 1e-6),
        lambda p: torch.optim.Adam(p, 0.1, betas=(0.8, 0.99), eps=1e-6, fused=True),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_updates_equal_torch_optim_bit_for_bit(case):
    ours_cls, torch_cls = CASES[case]
    start, grads = params_and_grads(0)
    ours = [p.clone().requires_grad_() for p in start]
    theirs = [p.clone().requires_grad_() for p in start]
    run(ours_cls(ours), ours, grads, LRS, set_ours)
    run(torch_cls(theirs), theirs, grads, LRS, set_torch)
    for a, b, s in zip(ours, theirs, start):
        assert not torch.equal(a, s)  # the parameters moved
        assert torch.equal(a, b)


@pytest.mark.parametrize("case", CASES)
def test_state_dict_resumes_exactly(case):
    make = CASES[case][0]
    start, grads = params_and_grads(1)
    whole = [p.clone().requires_grad_() for p in start]
    run(make(whole), whole, grads, LRS, set_ours)

    first = [p.clone().requires_grad_() for p in start]
    opt = make(first)
    run(opt, first, grads[:2], LRS[:2], set_ours)
    state = {
        k: [t.clone() for t in v] if isinstance(v, list) else v for k, v in opt.state_dict().items()
    }
    resumed = [p.detach().clone().requires_grad_() for p in first]
    fresh = make(resumed)
    fresh.load_state_dict(state)
    run(fresh, resumed, grads[2:], LRS[2:], set_ours)
    for a, b in zip(resumed, whole):
        assert torch.equal(a, b)


def test_unknown_optimizer_is_named():
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        optim.make([torch.zeros(1, requires_grad=True)], training_settings(optimizer="rmsprop"))


def test_training_does_not_import_dynamo():
    # torch.optim's constructor imports torch._dynamo: about a second of every training job.
    code = (
        "import sys, torch\n"
        "from doubledescent import optim\n"
        "p = torch.zeros(2, 3, requires_grad=True)\n"
        "for opt in (optim.SGD([p], 0.1, 0.9), optim.Adam([p], 0.1, (0.9, 0.999), 1e-8)):\n"
        "    p.sum().backward(); opt.step(); opt.zero_grad()\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

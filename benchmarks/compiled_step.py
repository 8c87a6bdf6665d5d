"""What a compiled step would buy (issue #15): the project's training step against the same
step written functionally and compiled by torch.compile (inductor's C++ kernels).

The default sweep's plain group at each width, as it trains: 9 runs (3 seeds x none / L2
5e-4 / dropout 0.1), MLP 40 -> h -> h -> 10, 4000 MNIST-1D samples, batch 100 (40 steps an
epoch), SGD lr 0.01 momentum 0.9, cross-entropy. Both steps start from the group's weights,
see the same batches and draw each dropping run's masks from its own stream; the compiled
one takes the masks and each run's weight decay as inputs of one compiled function. After
the timed epochs their weights are compared, so that the timing is of the same work.
Inductor's cache goes to a fresh folder, so the compile time printed is a cold one. Each
round times an epoch of each step and the bare bmm of the widest layer (`% peak`: the
step's multiply-adds, 3 x 2 FLOP each, against it); the medians over rounds are printed.

    OMP_NUM_THREADS=1 python benchmarks/compiled_step.py --widths 16 47 135 300
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from peers import default_sweep, plain_group  # noqa: E402
from profile_widths import bmm_peak  # noqa: E402

from doubledescent import architectures, provenance, train  # noqa: E402
from doubledescent.regularizers.l2 import L2  # noqa: E402

STEPS, BATCH = 40, 100


def loss(params: list, x: torch.Tensor, y: torch.Tensor, keeps: list) -> torch.Tensor:
    """The runs' summed mean cross-entropies of the MLP whose stacked (weight, bias) pairs
    are `params` (flat), each hidden activation times its keep indicators and scale."""
    h = x
    for i, keep in enumerate(keeps):
        h = torch.relu(torch.baddbmm(params[2 * i + 1], h, params[2 * i])) * keep
    logits = torch.baddbmm(params[-1], h, params[-2])
    return F.cross_entropy(logits.transpose(1, 2), y, reduction="none").sum() / y.shape[1]


def sgd_step(params, buffers, x, y, keeps, decays, lr, momentum: float) -> None:
    """Coupled L2 (each run's wd, 0 for the others), then SGD with momentum in place; zeroed
    buffers make the first step torch.optim's (buf = g)."""
    grads = torch.func.grad(loss)(params, x, y, keeps)
    for p, g, buf, wd in zip(params, grads, buffers, decays):
        if wd is not None:
            g = g + p * wd
        buf.mul_(momentum).add_(g)
        p.sub_(lr * buf)


class CompiledStep:
    """The group's step as one compiled call; each step copies the dropping runs' keep
    indicators from their streams (per run, layer by layer, as the hand-written step draws
    them) into buffers whose other runs keep 1."""

    def __init__(self, group: train.Group):
        opt, mask = group.optimizer, group.mask
        self.group, self.params = group, [p.detach() for p in opt.params]
        self.buffers = opt.momentum_buffers
        for buf in self.buffers:
            buf.zero_()
        decays = {
            id(p): (span, wd)
            for h in group.hooks
            if isinstance(h, L2)
            for p, span, _, wd in h.slices
        }
        self.decays = [
            self.full(p, *decays[id(p)]) if id(p) in decays else None for p in opt.params
        ]
        shape = (len(group.runs), BATCH, group.model.linears[0].weight.shape[-1])
        self.keeps = [torch.ones(shape) for _ in group.model.linears[1:]]
        self.scale = mask.scale.view(-1, 1, 1)
        self.lr = torch.tensor(opt.lr)
        self.compiled = torch.compile(sgd_step, dynamic=False, fullgraph=True)

    @staticmethod
    def full(p: torch.Tensor, span: slice, wd: torch.Tensor) -> torch.Tensor:
        """Every run's weight decay (R, 1, 1), 0 outside `span`."""
        full = torch.zeros(p.shape[0], 1, 1)
        full[span] = wd
        return full

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        mask = self.group.mask
        for j in range(len(self.group.runs))[mask.span]:
            for u in self.keeps:
                u[j].copy_(mask.gens[j].take(u[j].numel(), mask.rates[j]).view(u[j].shape))
        keeps = [u * self.scale for u in self.keeps]
        mom = self.group.optimizer.momentum
        self.compiled(self.params, self.buffers, x, y, keeps, self.decays, self.lr, mom)


def batches(group: train.Group, data: train.Tensors) -> list:
    """An epoch's batches in the runs' own orders, as train_epoch gathers them."""
    order = train.epoch_order(group, data.x_train.shape[0], "cpu")
    idx = [order[:, b * BATCH : (b + 1) * BATCH] for b in range(STEPS)]
    return [(train.gather(data.x_train, i), train.gather(data.y_train, i)) for i in idx]


def epoch_seconds(step, epoch: list) -> float:
    start = time.perf_counter()
    for x, y in epoch:
        step(x, y)
    return time.perf_counter() - start


def measure(exp: dict, arrays, width: int, epochs: int) -> dict:
    """Medians over `epochs` rounds of (a hand epoch, a compiled epoch, the bare bmm's peak),
    each round's three timed together, so that the ratios see one state of the machine: on a
    shared VM speeds drift by tens of percent within minutes."""
    spec = plain_group(exp, width)
    shape = train.input_shape(spec, arrays)
    data = train.Tensors.from_arrays(arrays, "cpu", torch.float32, shape)
    hand, fast = (
        train.make_group(spec, list(spec.runs), shape, arrays.num_classes, "cpu") for _ in "ab"
    )
    epoch = batches(hand, data)
    step = CompiledStep(fast)
    start = time.perf_counter()
    step(*epoch[0])
    compile_s = time.perf_counter() - start
    # One untimed epoch each (the compiled step's first holds its compiling).
    for x, y in epoch[1:]:
        step(x, y)

    def hand_step(x, y):
        train.train_step(hand, x, y)

    epoch_seconds(hand_step, epoch)
    rounds = []
    for _ in range(epochs):
        rounds.append(
            (
                epoch_seconds(hand_step, epoch),
                epoch_seconds(step, epoch),
                bmm_peak(len(spec.runs), BATCH, width),
            )
        )
    macs = architectures.forward_macs(spec.model.to_dict(), width, shape, arrays.num_classes)
    gflop = 6 * len(spec.runs) * BATCH * macs * STEPS / 1e9  # forward and backward: 3 x 2
    pairs = zip(hand.model.parameters(), fast.model.parameters())
    return {
        "hand": statistics.median(r[0] for r in rounds),
        "compiled": statistics.median(r[1] for r in rounds),
        "compile_s": compile_s,
        "drift": max((a - b).abs().max().item() for a, b in pairs),
        "hand %peak": statistics.median(100 * gflop / h / p for h, _, p in rounds),
        "compiled %peak": statistics.median(100 * gflop / c / p for _, c, p in rounds),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5, help="rounds timed; medians count")
    p.add_argument("--widths", type=int, nargs="*", default=[16, 47, 135, 300])
    args = p.parse_args()
    if args.epochs < 1:
        p.error("--epochs must be at least 1: the medians are over that many rounds")
    torch.set_num_threads(1)
    exp, arrays = default_sweep(args.epochs)
    print(f"machine: {provenance.cpu()}, torch {torch.__version__}, one thread")
    print(
        f"{'width':>5} {'hand ms':>8} {'compiled ms':>11} {'hand/compiled':>13} "
        f"{'compile s':>9} {'hand %peak':>10} {'compiled %peak':>14} {'max |dw|':>9}"
    )
    for width in args.widths:
        r = measure(exp, arrays, width, args.epochs)
        print(
            f"{width:5d} {1000 * r['hand']:8.1f} {1000 * r['compiled']:11.1f} "
            f"{r['hand'] / r['compiled']:13.2f} {r['compile_s']:9.1f} {r['hand %peak']:9.0f}% "
            f"{r['compiled %peak']:13.0f}% {r['drift']:9.1e}"
        )


if __name__ == "__main__":
    main()

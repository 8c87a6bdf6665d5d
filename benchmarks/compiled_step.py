"""What a compiled step would buy (issue #15): the project's hand-written MLP step against the
same step written functionally and compiled by torch.compile (inductor's C++ kernels).

The shape of the default sweep's plain groups: 9 runs stacked, MLP 40 -> h -> h -> 10,
batch 100, 40 steps an epoch (4000 samples), SGD lr 0.01 momentum 0.9, cross-entropy; no
dropout and no L2, which the functional step leaves out. Both start from the same weights
and see the same batches; after the timed epochs their weights are compared, so that the
timing is of the same work. Inductor's cache goes to a fresh folder, so the compile time
printed is a cold one (a persistent cache would pay it once per shape and machine).

    OMP_NUM_THREADS=1 python benchmarks/compiled_step.py --widths 16 47 135 300
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from profile_widths import bmm_peak  # noqa: E402

from doubledescent import architectures, optim, provenance, train  # noqa: E402
from doubledescent.models.mlp import StackedMLP  # noqa: E402

RUNS, BATCH, INPUTS, CLASSES, STEPS = 9, 100, 40, 10, 40
LR, MOMENTUM = 0.01, 0.9


def hand_model(width: int) -> StackedMLP:
    model = StackedMLP(RUNS, INPUTS, width, depth=2, num_classes=CLASSES)
    gen = torch.Generator().manual_seed(0)
    for run in range(RUNS):
        model.init_run(run, gen)
    return model


def hand_step(model: StackedMLP, opt: optim.SGD):
    def step(x, y):
        opt.zero_grad()
        logits, tape = model.train_forward(x, None)
        model.train_backward(tape, train.cross_entropy_gradient(logits, y), None)
        opt.step()

    return step


def loss(params, x, y):
    """The runs' summed mean cross-entropies (train.training_loss without its hooks)."""
    h = x
    for i in range(0, len(params) - 2, 2):
        h = torch.relu(torch.baddbmm(params[i + 1], h, params[i]))
    logits = torch.baddbmm(params[-1], h, params[-2])
    return train.sample_losses(logits, y, "cross_entropy").sum() / y.shape[1]


def functional_step(params, buffers, x, y):
    """SGD with momentum in place; zero buffers make the first step torch.optim's."""
    grads = torch.func.grad(loss)(params, x, y)
    for p, buf, g in zip(params, buffers, grads):
        buf.mul_(MOMENTUM).add_(g)
        p.sub_(LR * buf)


def best_epoch(step, batches, epochs: int) -> float:
    best = float("inf")
    for _ in range(epochs):
        start = time.perf_counter()
        for x, y in batches:
            step(x, y)
        best = min(best, time.perf_counter() - start)
    return best


def measure(width: int, epochs: int) -> dict:
    gen = torch.Generator().manual_seed(1)
    batches = [
        (
            torch.randn(RUNS, BATCH, INPUTS, generator=gen),
            torch.randint(0, CLASSES, (RUNS, BATCH), generator=gen),
        )
        for _ in range(STEPS)
    ]
    model = hand_model(width)
    hand_params = [t for layer in model.linears for t in (layer.weight, layer.bias)]
    # The compiled step's own copy of (weight, bias) per layer, before the hand step trains.
    params = [t.detach().clone() for t in hand_params]
    buffers = [torch.zeros_like(p) for p in params]
    hand = best_epoch(
        hand_step(model, optim.SGD(model.parameters(), LR, MOMENTUM)), batches, epochs
    )
    # Each width compiled for its own shapes, as one training job would be (by default a
    # second shape in one process recompiles with dynamic shapes: slower code).
    compiled = torch.compile(functional_step, dynamic=False)
    start = time.perf_counter()
    compiled(params, buffers, *batches[0])
    compile_s = time.perf_counter() - start
    # The rest of the compiled step's first epoch, untimed: both then take `epochs` epochs
    # of the same batches, and their weights can be compared at the end.
    for x, y in batches[1:]:
        compiled(params, buffers, x, y)
    fast = best_epoch(lambda x, y: compiled(params, buffers, x, y), batches, epochs - 1)
    drift = max((a - b).abs().max().item() for a, b in zip(hand_params, params))
    macs = architectures.forward_macs({"name": "mlp", "depth": 2}, width, (INPUTS,), CLASSES)
    flops = 6 * RUNS * BATCH * macs * STEPS  # forward and backward: 3 x 2 per multiply-add
    peak = bmm_peak(RUNS, BATCH, width)
    return {
        "hand": hand,
        "compiled": fast,
        "compile_s": compile_s,
        "drift": drift,
        "flops": flops,
        "peak": peak,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5, help="epochs timed; the best one counts")
    p.add_argument("--widths", type=int, nargs="*", default=[16, 47, 135, 300])
    args = p.parse_args()
    if args.epochs < 2:
        p.error("--epochs must be at least 2: the compiled step's first epoch compiles it")
    torch.set_num_threads(1)
    print(f"machine: {provenance.cpu()}, torch {torch.__version__}, one thread")
    print(
        f"{'width':>5} {'hand ms':>8} {'compiled ms':>11} {'hand/compiled':>13} "
        f"{'compile s':>9} {'hand %peak':>10} {'compiled %peak':>14} {'max |dw|':>9}"
    )
    for width in args.widths:
        r = measure(width, args.epochs)
        of_peak = [100 * r["flops"] / r[k] / 1e9 / r["peak"] for k in ("hand", "compiled")]
        print(
            f"{width:5d} {1000 * r['hand']:8.1f} {1000 * r['compiled']:11.1f} "
            f"{r['hand'] / r['compiled']:13.2f} {r['compile_s']:9.1f} {of_peak[0]:9.0f}% "
            f"{of_peak[1]:13.0f}% {r['drift']:9.1e}"
        )


if __name__ == "__main__":
    main()

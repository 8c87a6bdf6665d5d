"""Where a training step's time goes, width by width (issue #15: profile before choosing).

For each width, the default sweep's plain group (9 runs: 3 seeds x none / L2 / dropout) is
trained for `--epochs` epochs under torch.profiler, one thread. The table splits the wall
time into the ATen ops' own CPU time by kind (matmuls, elementwise, loss, optimizer, data,
other) and what is left outside any op: Python, autograd's engine and dispatch; the
evaluation column is the wall time spent evaluating (its ops are in the kinds too). The last
columns compare the matmuls' FLOP/s (training and the evaluation) with a bare batched matmul
of the widest hidden layer's shape, the ceiling issue #15 measures the large widths against;
`of peak` is the whole run's FLOP/s (its matmuls' FLOPs over its wall time) against it.

    python benchmarks/profile_widths.py --epochs 3 --widths 4 16 47 135 300
"""

from __future__ import annotations

import argparse
import time

import torch
from gemm_backends import best_seconds
from peers import default_sweep, plain_group
from torch.profiler import ProfilerActivity, profile

from doubledescent import architectures, data, provenance, train
from doubledescent.regularizers.dropout_masks import BitStream
from doubledescent.specs import GroupSpec

# ATen ops by kind: an op whose name (less `aten::` and leading underscores) starts with one
# of a kind's prefixes is of that kind, the first that matches; the rest are "other" (views,
# allocation, autograd's nodes).
KINDS = {
    "matmul": ("bmm", "baddbmm", "addmm", "mm", "matmul"),
    "loss": ("log_softmax", "nll_loss", "cross_entropy", "mse_loss"),
    "optimizer": ("fused_sgd", "fused_adam", "foreach"),
    "masks": ("uniform", "rand", "bernoulli", "ge"),
    "data": ("index_select", "randperm", "gather"),
    "elementwise": ("relu", "clamp", "threshold", "mul", "add", "sub", "div", "where", "copy"),
    "fill": ("fill", "zero", "ones"),
}


def kind_of(op: str) -> str:
    name = op.removeprefix("aten::").lstrip("_")
    return next((k for k, prefixes in KINDS.items() if name.startswith(prefixes)), "other")


def bmm_peak(runs: int, batch: int, width: int, repeats: int = 100) -> float:
    """GFLOP/s of the widest layer's forward product alone, (R, B, h) @ (R, h, h): the best
    of five timings, as one timing on a shared VM can come out at half of it."""
    a, b = torch.randn(runs, batch, width), torch.randn(runs, width, width)
    seconds = best_seconds(lambda: torch.bmm(a, b), repeats)
    return 2 * runs * batch * width * width / seconds / 1e9


def matmul_flops(spec: GroupSpec, arrays: data.Arrays, epochs: int) -> float:
    """FLOPs of the group's weights over its epochs (forward and backward: 3 x 2 per
    multiply-add) and its one evaluation (forward on the train and test sets)."""
    macs = architectures.forward_macs(
        spec.model.to_dict(), spec.width, arrays.x_train.shape[1:], arrays.num_classes
    )
    samples = 3 * len(arrays.y_train) * epochs + len(arrays.y_train) + len(arrays.y_test)
    return 2.0 * macs * len(spec.runs) * samples


def timed(fn, clock: list[float]):
    """`fn`, adding the seconds each call takes to clock[0]."""

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            clock[0] += time.perf_counter() - start

    return wrapper


def profile_width(exp: dict, width: int, arrays: data.Arrays, epochs: int) -> dict:
    spec = plain_group(exp, width)
    # The CPU's mask draws run in numpy (BitStream), outside any ATen op: timed apart and
    # counted as masks.
    evaluating, drawing = [0.0], [0.0]
    evaluate, train.evaluate = train.evaluate, timed(train.evaluate, evaluating)
    draw, BitStream.draw_block = BitStream.draw_block, timed(BitStream.draw_block, drawing)
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            train.train_group(spec, arrays, device="cpu", threads=1, log=lambda s: None)
            wall = time.perf_counter() - start
    finally:
        train.evaluate, BitStream.draw_block = evaluate, draw
    by_kind = dict.fromkeys([*KINDS, "other"], 0.0)
    for event in prof.key_averages():
        by_kind[kind_of(event.key)] += event.self_cpu_time_total / 1e6
    by_kind["masks"] += drawing[0]
    flops = matmul_flops(spec, arrays, epochs)
    return {
        "wall": wall,
        **by_kind,
        "outside ops": max(wall - sum(by_kind.values()), 0.0),
        "evaluation": evaluating[0],
        "matmul GFLOP/s": flops / by_kind["matmul"] / 1e9,
        "all GFLOP/s": flops / wall / 1e9,
        "bmm peak": bmm_peak(len(spec.runs), spec.training.batch_size, width),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--widths", type=int, nargs="*", default=[4, 16, 47, 135, 300])
    args = p.parse_args()
    torch.set_num_threads(1)
    exp, arrays = default_sweep(args.epochs)
    print(f"machine: {provenance.cpu()}, torch {torch.__version__}")
    print(f"{args.epochs} epochs, one thread; shares of the wall time, profiler on")
    rows = {w: profile_width(exp, w, arrays, args.epochs) for w in args.widths}
    kinds = [*KINDS, "other", "outside ops", "evaluation"]
    print(f"{'width':>5} {'ms/epoch':>9} " + " ".join(f"{k:>10}" for k in kinds), end="")
    print(f" {'mm GFLOP/s':>10} {'bmm peak':>8} {'of peak':>7}")
    for w, r in rows.items():
        shares = " ".join(f"{100 * r[k] / r['wall']:9.0f}%" for k in kinds)
        print(f"{w:5d} {1000 * r['wall'] / args.epochs:9.1f} {shares}", end="")
        of_peak = 100 * r["all GFLOP/s"] / r["bmm peak"]
        print(f" {r['matmul GFLOP/s']:10.1f} {r['bmm peak']:8.1f} {of_peak:6.0f}%")


if __name__ == "__main__":
    main()

"""The batched matrix products of a wide MLP step, by each GEMM library within reach (#15).

At the widest widths of the default sweep a training step is mostly its batched products, so
how fast the library behind them runs bounds the step. This times the products of one step
of the default sweep's plain group (9 runs, batch 100, MLP 40 -> h -> h -> 10) through:

  torch     torch.bmm, as the training step calls it (MKL on x86 wheels)
  onednn    oneDNN's matmul through torch.ops.mkldnn._linear_pointwise, one call per run
  numpy     numpy.matmul on the same memory (the BLAS numpy ships, OpenBLAS on PyPI's wheels)
  jax       jax.numpy.matmul under jit (XLA's CPU backend; needs `jax`)

one thread each, best of several timings, and prints GFLOP/s per product and library. A
library that runs these shapes faster than torch's is what a peer built on it (JAX) gains at
the wide widths, whatever the rest of its step does.

    python benchmarks/gemm_backends.py --widths 135 300
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

from doubledescent import provenance  # noqa: E402

RUNS, BATCH, INPUTS = 9, 100, 40


def products(width: int, gen: torch.Generator) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The step's products at `width` as (a, b) for a @ b per run, laid out as the step
    passes them (models.layers.linear_backward: transposed views where it takes them); the
    head's (10 classes) are left out: a few percent of the step's multiply-adds."""
    x, h, g = (torch.randn(RUNS, BATCH, n, generator=gen) for n in (INPUTS, width, width))
    w1, w2 = (torch.randn(RUNS, n, width, generator=gen) for n in (INPUTS, width))
    return {
        "first layer, forward": (x, w1),
        "hidden, forward": (h, w2),
        "hidden, input gradient": (g, w2.mT),
        "hidden, weight gradient": (h.mT, g),
        "first layer, weight gradient": (x.mT, g),
    }


def best_seconds(call, repeats: int) -> float:
    """The fastest of five timings of `repeats` calls, per call."""
    call()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            call()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def calls(a: torch.Tensor, b: torch.Tensor) -> dict:
    """Each library's call computing a @ b per run, on the same operands."""
    out = torch.empty(a.shape[0], a.shape[1], b.shape[2])
    a_np, b_np, out_np = a.numpy(), b.numpy(), out.numpy()
    # oneDNN's linear takes the weight as (out, in): run r's b[r] transposed, as a view.
    weights = [w.mT for w in b]
    backends = {
        "torch": lambda: torch.bmm(a, b, out=out),
        "onednn": lambda: [
            torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")
            for x, w in zip(a, weights)
        ],
        "numpy": lambda: np.matmul(a_np, b_np, out=out_np),
    }
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return backends
    matmul, a_j, b_j = jax.jit(jnp.matmul), jnp.asarray(a_np), jnp.asarray(b_np)
    backends["jax"] = lambda: matmul(a_j, b_j).block_until_ready()
    return backends


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", type=int, nargs="*", default=[135, 300])
    p.add_argument("--repeats", type=int, default=100, help="calls per timing")
    args = p.parse_args()
    torch.set_num_threads(1)
    threadpool_limits(1)
    blas = [f"{i['internal_api']} {i['version']}" for i in threadpool_info()]
    print(f"machine: {provenance.cpu()}, torch {torch.__version__}, one thread")
    print(f"numpy's libraries: {', '.join(blas)}; GFLOP/s per product")
    gen = torch.Generator().manual_seed(0)
    for width in args.widths:
        for name, (a, b) in products(width, gen).items():
            flop = 2 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
            rates = {
                k: flop / best_seconds(call, args.repeats) / 1e9 for k, call in calls(a, b).items()
            }
            cells = "  ".join(f"{k} {v:6.1f}" for k, v in rates.items())
            print(f"h = {width:3d}  {name:<30} {cells}", flush=True)


if __name__ == "__main__":
    main()

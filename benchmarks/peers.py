"""Peers: the project's training path against the other ways a researcher would write the sweep.

The same work for each, one torch (or XLA) thread, interleaved width by width in one
invocation so all meet the same machine: at each width of the default sweep, the 9 runs of
its plain group (3 seeds x none / L2 5e-4 / dropout 0.1), MLP 40 -> h -> h -> 10 on the
4000 MNIST-1D training samples, batch 100, SGD lr 0.01 momentum 0.9, `--epochs` epochs,
then each run's error on the training and the 12000 test samples (train_group evaluates
once at the end here, so every peer does too).

  project    doubledescent.train.train_group (stacked weights, batched matmuls)
  tutorial   one nn.Module per run, DataLoader, torch.optim.SGD (benchmarks/sweep_speed.py)
  torch.func the 9 runs' parameters stacked, a functional MLP vmapped over runs, fused SGD
  jax        jax.vmap over runs, an epoch as one jit-compiled lax.scan (needs `jax`; its
             compile time is reported apart and counted in a second ratio)

Prints milliseconds per epoch per width and peer, and as its last line `speedup:` the
fastest peer's time for the whole sweep over the project's (JAX's compile time counted).

    OMP_NUM_THREADS=1 python benchmarks/peers.py --epochs 10
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

# One thread for XLA too: set before jax is imported.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from sweep_speed import reference_run  # noqa: E402

from doubledescent import config, data, provenance, train  # noqa: E402
from doubledescent.specs import GroupSpec  # noqa: E402

LR, MOMENTUM, BATCH = 0.01, 0.9, 100


def default_sweep(epochs: int) -> tuple[dict, data.Arrays]:
    """The default config's main experiment at `epochs` epochs, evaluated at the last only,
    and its dataset."""
    cfg = config.load(REPO / "config.yaml", REPO / "workflow" / "schemas" / "config.schema.yaml")
    exp = cfg["experiments"]["mnist1d_mlp"]
    exp["training"].update(epochs=epochs, eval_epochs=[epochs])
    return exp, data.build(exp["dataset"])


def plain_group(exp: dict, width: int) -> GroupSpec:
    return config.group_spec("mnist1d_mlp", exp, f"width~{width}_norm~none")


def time_project(spec: GroupSpec, arrays: data.Arrays) -> float:
    start = time.perf_counter()
    train.train_group(spec, arrays, device="cpu", threads=1, log=lambda s: None)
    return time.perf_counter() - start


def time_tutorial(spec: GroupSpec, arrays: data.Arrays) -> float:
    start = time.perf_counter()
    for run in spec.runs:
        reference_run(run, spec, arrays)
    return time.perf_counter() - start


def stacked_init(runs: list[config.Run], sizes: list[int]) -> list[torch.Tensor]:
    """nn.Linear's init per run, stacked: [W1, b1, W2, b2, ...] each (R, ...)."""
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = fan_in**-0.5
        params.append((torch.rand(len(runs), fan_in, fan_out) * 2 - 1) * bound)
        params.append((torch.rand(len(runs), fan_out) * 2 - 1) * bound)
    return [p.requires_grad_() for p in params]


def time_torch_func(spec: GroupSpec, arrays: data.Arrays) -> float:
    """The torch.func recipe: vmap of a functional forward over the runs' stacked params."""
    runs = list(spec.runs)
    x, y = torch.from_numpy(arrays.x_train), torch.from_numpy(arrays.y_train)
    sizes = [x.shape[1], spec.width, spec.width, arrays.num_classes]
    params = stacked_init(runs, sizes)
    rates = torch.tensor([r.dropout for r in runs])
    wd = torch.tensor([r.weight_decay for r in runs])

    def forward(ps, rate, xb):
        h = xb
        for i in range(0, len(ps) - 2, 2):
            h = torch.relu(h @ ps[i] + ps[i + 1])
            h = h * (torch.rand_like(h) >= rate) / (1 - rate)
        return h @ ps[-2] + ps[-1]

    batched = torch.func.vmap(forward, in_dims=(0, 0, 0), randomness="different")
    evaluated = torch.func.vmap(forward, in_dims=(0, 0, None), randomness="different")
    opt = torch.optim.SGD(params, lr=LR, momentum=MOMENTUM, fused=True)
    start = time.perf_counter()
    for _ in range(spec.training.epochs):
        order = torch.stack([torch.randperm(len(y)) for _ in runs])
        for s in range(0, len(y), BATCH):
            idx = order[:, s : s + BATCH]
            logits = batched(params, rates, x[idx])
            loss = F.cross_entropy(logits.flatten(0, 1), y[idx].flatten()) * len(runs)
            opt.zero_grad()
            loss.backward()
            with torch.no_grad():  # coupled L2 on the weights, each run its own
                for w in params[::2]:
                    w.grad.add_(w * wd.view(-1, 1, 1))
            opt.step()
    with torch.no_grad():  # the final evaluation, as the other peers'
        for xs, ys in eval_sets(arrays):
            (
                evaluated(params, torch.zeros_like(rates), torch.from_numpy(xs)).argmax(-1).numpy()
                != ys
            ).mean(1)
    return time.perf_counter() - start


def eval_sets(arrays: data.Arrays) -> list:
    """What every peer evaluates once at the end, as train_group does: each run's error on
    the training and the test set."""
    return [(arrays.x_train, arrays.y_train), (arrays.x_test, arrays.y_test)]


def jax_epochs(spec: GroupSpec, arrays: data.Arrays) -> tuple[float, float]:
    """(compile seconds, training seconds) of the JAX recipe: vmap over runs, an epoch as one
    jit-compiled lax.scan over its minibatches."""
    import jax
    import jax.numpy as jnp

    runs = list(spec.runs)
    x, y = jnp.asarray(arrays.x_train), jnp.asarray(arrays.y_train)
    n, steps = len(arrays.y_train), len(arrays.y_train) // BATCH
    sizes = [x.shape[1], spec.width, spec.width, arrays.num_classes]
    params = [jnp.asarray(p.detach().numpy()) for p in stacked_init(runs, sizes)]
    rates = jnp.asarray([r.dropout for r in runs])
    wd = jnp.asarray([r.weight_decay for r in runs])

    def forward(ps, key, rate, xb):
        h = xb
        for i in range(0, len(ps) - 2, 2):
            h = jax.nn.relu(h @ ps[i] + ps[i + 1])
            if key is not None:
                key, sub = jax.random.split(key)
                h = h * (jax.random.uniform(sub, h.shape) >= rate) / (1 - rate)
        return h @ ps[-2] + ps[-1]

    def loss_fn(ps, key, rate, xb, yb):
        logits = forward(ps, key, rate, xb)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), yb[:, None], 1))

    def errors(ps, xs, ys):  # the final evaluation, as the other peers'
        return jnp.mean(jnp.argmax(forward(ps, None, 0.0, xs), -1) != ys)

    def epoch(ps, bufs, key, rate, decay):
        perm_key, key = jax.random.split(key)
        batches = jax.random.permutation(perm_key, n)[: steps * BATCH].reshape(steps, BATCH)

        def one_step(carry, idx):
            ps, bufs, key = carry
            key, sub = jax.random.split(key)
            grads = jax.grad(loss_fn)(ps, sub, rate, x[idx], y[idx])
            grads = [g + decay * p if i % 2 == 0 else g for i, (g, p) in enumerate(zip(grads, ps))]
            bufs = [MOMENTUM * b + g for b, g in zip(bufs, grads)]
            ps = [p - LR * b for p, b in zip(ps, bufs)]
            return (ps, bufs, key), None

        (ps, bufs, key), _ = jax.lax.scan(one_step, (ps, bufs, key), batches)
        return ps, bufs, key

    step = jax.jit(jax.vmap(epoch))
    evaluate = jax.jit(jax.vmap(errors, in_axes=(0, None, None)))
    sets = [(jnp.asarray(xs), jnp.asarray(ys)) for xs, ys in eval_sets(arrays)]
    bufs = [jnp.zeros_like(p) for p in params]
    keys = jax.random.split(jax.random.PRNGKey(0), len(runs))
    start = time.perf_counter()
    compiled = step.lower(params, bufs, keys, rates, wd).compile()
    evaluators = [evaluate.lower(params, *xy).compile() for xy in sets]
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    state = (params, bufs, keys)
    for _ in range(spec.training.epochs):
        state = compiled(*state, rates, wd)
    jax.block_until_ready([ev(state[0], *xy) for ev, xy in zip(evaluators, sets)])
    return compile_seconds, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--widths", type=int, nargs="*", help="default: the default sweep's")
    args = p.parse_args()
    torch.set_num_threads(1)
    exp, arrays = default_sweep(args.epochs)
    try:
        import jax  # noqa: F401

        peers = ["project", "tutorial", "torch.func", "jax"]
    except ImportError:
        print("jax is not installed (pip install jax): leaving it out")
        peers = ["project", "tutorial", "torch.func"]
    timers = {"project": time_project, "tutorial": time_tutorial, "torch.func": time_torch_func}
    totals = dict.fromkeys(peers, 0.0)
    compile_total = 0.0
    print(
        f"machine: {platform.node()} {provenance.cpu()}, "
        f"torch {torch.__version__}, {args.epochs} epochs, 9 runs per width, one thread"
    )
    print(
        f"{'width':>5} " + " ".join(f"{k:>11}" for k in peers) + "   ms per epoch; ratio to project"
    )
    for width in args.widths or sorted(exp["widths"]):
        spec = plain_group(exp, width)
        seconds = {}
        for peer in peers:
            if peer == "jax":
                compile_s, seconds[peer] = jax_epochs(spec, arrays)
                compile_total += compile_s
            else:
                seconds[peer] = timers[peer](spec, arrays)
            totals[peer] += seconds[peer]
        ms = {k: 1000 * v / args.epochs for k, v in seconds.items()}
        print(
            f"{width:5d} "
            + " ".join(f"{ms[k]:11.1f}" for k in peers)
            + "   "
            + " ".join(f"{k} {seconds[k] / seconds['project']:.2f}x" for k in peers[1:])
        )
    print("whole sweep, s: " + ", ".join(f"{k} {v:.1f}" for k, v in totals.items()))
    if "jax" in totals:
        print(f"jax compile: {compile_total:.1f} s in all")
        print(f"speedup without jax's compile: {fastest_peer(totals) / totals['project']:.2f}")
        totals["jax"] += compile_total
    print(f"speedup: {fastest_peer(totals) / totals['project']:.2f}")


def fastest_peer(totals: dict[str, float]) -> float:
    return min(v for k, v in totals.items() if k != "project")


if __name__ == "__main__":
    main()

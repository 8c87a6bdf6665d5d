"""Sweep speed: the project's grouped training against the tutorial loop, same runs, same cores.

Trains every run of an experiment (default: the default config's 19 widths x 4 variants x 3
seeds) for a fixed number of epochs two ways, interleaved group by group so both see the same
machine conditions:

  project    doubledescent.train.train_group: one process per group, stacked weights,
             data as tensors, batches by permutation;
  reference  the tutorial loop: one nn.Module per run, DataLoader(TensorDataset(...),
             shuffle=True), torch.optim.SGD(weight_decay=...), zero_grad/backward/step.

Both use one torch thread per task; --jobs N runs N tasks at once (joblib processes).
The last line is `speedup: <reference time / project time>`.

    python benchmarks/sweep_speed.py --epochs 5 --jobs 2
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import joblib
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from doubledescent import config, data, models, provenance, train
from doubledescent.specs import GroupSpec

REPO = Path(__file__).resolve().parents[1]


def matmul_gflops(n: int = 1024, repeats: int = 10) -> float:
    """This machine's single-thread fp32 matmul speed, the ceiling for both paths."""
    torch.set_num_threads(1)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def reference_model(run: config.Run, depth: int, in_features: int, classes: int) -> nn.Module:
    """The tutorial MLP: Linear, [BatchNorm1d], ReLU, [Dropout] per hidden layer."""
    layers, fan_in = [], in_features
    for _ in range(depth):
        layers.append(nn.Linear(fan_in, run.width))
        if run.batchnorm:
            layers.append(nn.BatchNorm1d(run.width))
        layers.append(nn.ReLU())
        if run.dropout:
            layers.append(nn.Dropout(run.dropout))
        fan_in = run.width
    return nn.Sequential(*layers, nn.Linear(fan_in, classes))


def reference_run(run: config.Run, spec: GroupSpec, arrays: data.Arrays) -> None:
    """One run as the tutorials write it, evaluated once at the end like the project path."""
    torch.manual_seed(run.seed)
    tr = spec.training
    x, y = torch.from_numpy(arrays.x_train), torch.from_numpy(arrays.y_train)
    model = reference_model(run, spec.model.options["depth"], x.shape[1], arrays.num_classes)
    opt = torch.optim.SGD(
        model.parameters(), lr=tr.lr, momentum=tr.momentum, weight_decay=run.weight_decay
    )
    loader = DataLoader(TensorDataset(x, y), batch_size=tr.batch_size, shuffle=True)
    model.train()
    for _ in range(tr.epochs):
        for xb, yb in loader:
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        for xs, ys in [(x, arrays.y_train), (torch.from_numpy(arrays.x_test), arrays.y_test)]:
            (model(xs).argmax(1).numpy() != ys).mean()


def task(kind: str, spec: GroupSpec, arrays: data.Arrays) -> tuple[str, int, float]:
    """Time one group's runs by one path, in a one-thread worker."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    if kind == "project":
        train.train_group(spec, arrays, device="cpu", threads=1, log=lambda s: None)
    else:
        for run in spec.runs:
            reference_run(run, spec, arrays)
    return kind, spec.width, time.perf_counter() - start


def training_flops(exp: dict, arrays: data.Arrays) -> float:
    """Multiply-adds x 2 of forward and backward (x3 of forward) over all runs and epochs."""
    per_sample = sum(
        models.n_params(exp["model"], arrays.x_train.shape[1:], arrays.num_classes, r.width, False)
        for r in config.runs(exp)
    )
    return 6.0 * per_sample * len(arrays.y_train) * exp["training"]["epochs"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(REPO / "config.yaml"))
    p.add_argument("--experiment", default="mnist1d_mlp")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--jobs", type=int, default=2, help="tasks at once (processes)")
    args = p.parse_args()

    cfg = config.load(args.config, REPO / "workflow" / "schemas" / "config.schema.yaml")
    exp = cfg["experiments"][args.experiment]
    exp["training"].update(epochs=args.epochs, eval_epochs=[args.epochs])
    arrays = data.build(exp["dataset"])
    specs = [config.group_spec(args.experiment, exp, gid) for gid in config.groups(exp)]
    # Largest groups first, alternating paths, so both meet the same load.
    specs.sort(key=lambda s: -s.width)
    tasks = [(kind, s) for s in specs for kind in ("project", "reference")]

    peak = matmul_gflops()
    with joblib.parallel_config(backend="loky", n_jobs=args.jobs):
        timings = joblib.Parallel()(joblib.delayed(task)(k, s, arrays) for k, s in tasks)
    seconds = {k: sum(t for kind, _, t in timings if kind == k) for k in ("project", "reference")}

    n_runs, flops = len(config.runs(exp)), training_flops(exp, arrays)
    print(
        f"machine: {platform.node()}  {provenance.cpu()}  "
        f"torch {torch.__version__}  jobs {args.jobs}  one thread per job"
    )
    print(f"runs: {n_runs} ({len(specs)} groups) x {args.epochs} epochs")
    print(f"single-thread matmul: {peak:.1f} GFLOP/s")
    for kind, s in seconds.items():
        print(
            f"{kind:>9}: {s:8.1f} s (summed over tasks)  "
            f"{n_runs / s * 60:8.1f} runs/min  {flops / s / 1e9:6.1f} GFLOP/s "
            f"({flops / s / 1e9 / peak:.0%} of one core's matmul peak)"
        )
    print("by width, project s / reference s (speedup):")
    print(
        "\n".join(
            f"  {w:4d}: {proj:6.1f} / {ref:6.1f}  ({ref / proj:.1f}x)"
            for w, (proj, ref) in by_width(timings).items()
        )
    )
    print(f"speedup: {seconds['reference'] / seconds['project']:.2f}")


def by_width(timings) -> dict[int, tuple[float, float]]:
    """(project, reference) seconds per width, both groups of a width together."""
    out: dict[int, list[float]] = {}
    for kind, width, t in timings:
        out.setdefault(width, [0.0, 0.0])[kind == "reference"] += t
    return {w: tuple(v) for w, v in sorted(out.items())}


if __name__ == "__main__":
    main()

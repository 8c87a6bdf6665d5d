"""Dispatched ATen ops of the default study: a CPU-measurable proxy of a GPU's launch count.

On a GPU each dispatched op is (about) one kernel launch, and the default study's steps are
small enough to be bound by launches, not arithmetic. This counts, for every training job of
a config, the ops one epoch of training dispatches (its gradient steps and its minibatch
order) and one evaluation pass, on the CPU, and totals them over the job's epochs and
evaluations: with one group per job (the CPU's jobs) and packed (CUDA's, packing
`experiment`: every group of an experiment in one zero-padded model). Two counters: a
TorchDispatchMode (each op that reaches a kernel, once) and torch.profiler (every aten::
event, ops called inside other ops included), for one step.

    python benchmarks/dispatch_ops.py 2>/dev/null    (the profiler logs to stderr)
"""

from __future__ import annotations

import argparse
import math
import platform
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from doubledescent import config, data, packing, provenance, train
from doubledescent.specs import GroupSpec

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


class OpCounter(TorchDispatchMode):
    """Counts the ATen ops dispatched inside its block."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def counted(fn) -> int:
    with OpCounter() as counter:
        fn()
    return counter.count


def profiled(fn) -> int:
    """aten:: events of `fn` under torch.profiler, nested ones included."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return sum(e.name.startswith("aten::") for e in prof.events())


def job_state(spec: GroupSpec, arrays: data.Arrays) -> tuple[train.Group, train.Tensors]:
    """A training job's model and data, built as train.train_group builds them, but with the
    GPU's mask streams (torch generators): the CPU's draw masks in numpy, outside any op."""
    arrays = train.group_arrays(spec, arrays)
    shape = train.input_shape(spec, arrays)
    tensors = train.Tensors.from_arrays(arrays, "cpu", shape=shape)
    group = train.make_group(spec, list(spec.runs), shape, arrays.num_classes, "cpu")
    # In place: the dropout masks hold the same list.
    group.dropout_gens[:] = [train.torch_mask_stream(r.seed) for r in group.runs]
    return group, tensors


def count_job(spec: GroupSpec, arrays: data.Arrays) -> dict:
    """Ops of one job: per epoch, per evaluation, per step (the profiler's too), in total."""
    group, tensors = job_state(spec, arrays)
    tr = spec.training
    batch = tr.batch_size
    steps = math.ceil(tensors.x_train.shape[0] / batch)
    train.train_epoch(group, tensors, batch)  # first-call work (e.g. momentum buffers) once
    epoch = counted(lambda: train.train_epoch(group, tensors, batch))
    evaluation = counted(lambda: train.evaluate(group.model, tensors, tr.loss))
    xb = train.gather(tensors.x_train, torch.zeros(len(group.runs), batch, dtype=torch.long))
    yb = train.gather(tensors.y_train, torch.zeros(len(group.runs), batch, dtype=torch.long))
    return {
        "runs": len(group.runs),
        "epoch": epoch,
        "step": counted(lambda: train.train_step(group, xb, yb)),
        "step_profiler": profiled(lambda: train.train_step(group, xb, yb)),
        "evaluation": evaluation,
        "steps": steps * tr.epochs,
        "total": epoch * tr.epochs + evaluation * len(tr.eval_epoch_list()),
    }


def study_jobs(cfg: dict, packs: bool) -> list[tuple[str, GroupSpec]]:
    """(experiment, spec) of every training job, one group per job or packed."""
    return [
        (name, packing.job_spec(name, exp, job))
        for name, exp in cfg["experiments"].items()
        for job in packing.jobs(exp, packs)
    ]


def count_study(cfg: dict, jobs: list[tuple[str, GroupSpec]], label: str) -> int:
    arrays = {
        name: data.build(config.dataset_spec(exp)) for name, exp in cfg["experiments"].items()
    }
    print(f"{label}: {len(jobs)} training jobs")
    print(
        f"  {'experiment':<20} {'job':<24} {'runs':>4} {'ops/step':>8} {'(profiler)':>10} "
        f"{'ops/epoch':>9} {'ops/eval':>8} {'total ops':>12}"
    )
    total = 0
    for name, spec in jobs:
        c = count_job(spec, arrays[name])
        total += c["total"]
        job = spec.group
        print(
            f"  {name:<20} {job:<24} {c['runs']:>4} {c['step']:>8} {c['step_profiler']:>10} "
            f"{c['epoch']:>9} {c['evaluation']:>8} {c['total']:>12,}"
        )
    print(f"{label}: {total:,} dispatched ops in total")
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(REPO / "config.yaml"))
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = config.load(args.config, SCHEMA)
    print(
        f"machine: {platform.node()}, {provenance.cpu()}, torch {torch.__version__}, "
        f"config {args.config}"
    )
    before = count_study(cfg, study_jobs(cfg, packs=False), "one group per job")
    after = count_study(cfg, study_jobs(cfg, packs=True), "packed (as on CUDA)")
    print(f"packing dispatches {before / after:.1f}x fewer ops")


if __name__ == "__main__":
    main()

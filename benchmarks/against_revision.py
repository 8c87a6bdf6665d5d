"""This tree's training against another revision's, on every group of the default config.

Trains each group of every experiment in config.yaml (the default study: 47 groups) for
`--epochs` epochs with one evaluation at the end (the default's 20 evaluations in 500
epochs are one per 25), once with this tree's code and once with the revision's (checked
out into a temporary folder with `git worktree`), one torch thread each. Two worker
processes, one per tree, take the groups in turn, alternating which goes first, so both
meet the same machine. Prints each group's seconds and whether its runs' final metrics
(train and test loss and error) are identical in both trees, and as its last line
`speedup: <revision's summed training time / this tree's>`.

    python benchmarks/against_revision.py --rev ef659d3 --epochs 25

What that leaves out of the whole run (job start-up, data preparation, plots) was ~6% of
the default run's wall time (docs/benchmarks.md). `--whole` times the whole run instead:
both trees' `snakemake --cores 1` on their own config.yaml, started together in temporary
folders (so both meet the same machine), and prints `speedup: <revision's wall time / this
tree's>`; ~20 min on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Runs in each worker, with that tree's src first on sys.path and its config.yaml: reads
# "experiment group" lines and answers each with the seconds train_group took. Only calls
# that both revisions have.
WORKER = """
import json, sys, time
import torch
from doubledescent import config, data, train
torch.set_num_threads(1)
repo, epochs, METRICS = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
cfg = config.load(f"{repo}/config.yaml", f"{repo}/workflow/schemas/config.schema.yaml")
arrays = {}
for name, exp in cfg["experiments"].items():
    exp["training"].update(epochs=epochs, eval_epochs=[epochs])
    arrays[name] = data.build(exp["dataset"])
print(json.dumps({n: list(config.groups(e)) for n, e in cfg["experiments"].items()}), flush=True)
for line in sys.stdin:
    name, gid = line.split()
    spec = config.group_spec(name, cfg["experiments"][name], gid)
    start = time.perf_counter()
    df = train.train_group(spec, arrays[name], device="cpu", threads=1, log=lambda s: None)
    seconds = time.perf_counter() - start
    metrics = df.sort_values("run_id")[METRICS].to_numpy().tolist()
    print(json.dumps({"seconds": seconds, "metrics": metrics}), flush=True)
"""
# The columns whose values the two trees' runs are compared on.
METRICS = ["train_loss", "train_error", "test_loss", "test_error"]


def tree_env(tree: Path) -> dict:
    """The environment of a process that runs `tree`'s code, one thread."""
    return {**os.environ, "PYTHONPATH": str(tree / "src"), "OMP_NUM_THREADS": "1"}


class Worker:
    """One tree's worker process."""

    def __init__(self, tree: Path, epochs: int):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tree), str(epochs), *METRICS],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=tree_env(tree),
        )
        self.groups = json.loads(self.proc.stdout.readline())

    def train(self, name: str, gid: str) -> dict:
        """The group's seconds and its runs' final metrics (run by run, METRICS)."""
        self.proc.stdin.write(f"{name} {gid}\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rev", required=True, help="the revision to compare with, e.g. main")
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--whole", action="store_true", help="time both trees' whole default run")
    p.add_argument("--configfile", default="config.yaml", help="with --whole: in each tree")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old_tree = Path(tmp) / "old"
        git = ["git", "-C", str(REPO)]
        subprocess.run([*git, "worktree", "add", "--detach", str(old_tree), args.rev], check=True)
        try:
            if args.whole:
                whole_runs({args.rev: old_tree, "this tree": REPO}, args.configfile, Path(tmp))
            else:
                compare(Worker(old_tree, args.epochs), Worker(REPO, args.epochs), args)
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(old_tree)], check=True)


def whole_runs(trees: dict[str, Path], configfile: str, tmp: Path) -> None:
    """Each tree's run of its `configfile` on one core, all started at once; their walls."""
    from doubledescent import provenance

    print(f"machine: {provenance.cpu()}; {configfile}, snakemake --cores 1 each")
    start, running = time.perf_counter(), {}
    for i, (name, tree) in enumerate(trees.items()):
        cmd = [
            "snakemake",
            "--snakefile",
            str(tree / "Snakefile"),
            "--directory",
            str(tmp / str(i)),
        ]
        cmd += ["--cores", "1", "--configfile", str(tree / configfile)]
        log = open(tmp / f"{i}.log", "w")  # noqa: SIM115 (closed with the process below)
        running[subprocess.Popen(cmd, env=tree_env(tree), stdout=log, stderr=log).pid] = name, log
    walls = {}
    while running:
        pid, status = os.wait()
        name, log = running.pop(pid)
        log.close()
        if status:
            raise SystemExit(f"{name}'s run failed; its log: {log.name}")
        walls[name] = time.perf_counter() - start
        print(f"{name}: {walls[name] / 60:.1f} min", flush=True)
    old, new = (walls[name] for name in trees)
    print(f"speedup: {old / new:.2f}")


def compare(old: Worker, new: Worker, args) -> None:
    from doubledescent import provenance

    if old.groups != new.groups:
        raise SystemExit("the two trees see different groups in config.yaml")
    print(f"machine: {provenance.cpu()}; {args.epochs} epochs per group, one thread each")
    print(f"{'group':<40} {args.rev:>9} {'this tree':>9}  speedup  metrics")
    totals, differing = [0.0, 0.0], []
    for i, (name, gid) in enumerate((n, g) for n, gs in new.groups.items() for g in gs):
        pair = (old, new) if i % 2 == 0 else (new, old)
        results = {id(w): w.train(name, gid) for w in pair}
        r_old, r_new = results[id(old)], results[id(new)]
        t_old, t_new = r_old["seconds"], r_new["seconds"]
        totals[0] += t_old
        totals[1] += t_new
        same = r_old["metrics"] == r_new["metrics"]
        if not same:
            differing.append(f"{name} {gid}")
        print(
            f"{name + ' ' + gid:<40} {t_old:9.2f} {t_new:9.2f}  {t_old / t_new:7.2f}  "
            f"{'identical' if same else 'DIFFERENT'}",
            flush=True,
        )
    old.close()
    new.close()
    print(f"metrics ({', '.join(METRICS)}): ", end="")
    print(f"different in {len(differing)} groups" if differing else "identical in every group")
    print(f"summed training, s: {args.rev} {totals[0]:.1f}, this tree {totals[1]:.1f}")
    print(f"speedup: {totals[0] / totals[1]:.2f}")


if __name__ == "__main__":
    main()

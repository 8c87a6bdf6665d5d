"""The GPU check: one command for a machine with a CUDA device; any error stops it non-zero.

    python benchmarks/gpu_check.py            # about 5-8 minutes on one H100/H200
    python benchmarks/gpu_check.py --quick    # the default study at 50 epochs, for a rerun

In order, each step timed and printed as it finishes (paste the output into
docs/benchmarks.md with the date):
  1. the device, driver-side versions and memory;
  2. the tests marked `cuda` (tests/test_cuda.py), which must pass, not skip;
  3. the tiny test configs (MLP on MNIST-1D, the 5-layer CNN on CIFAR-format files) through
     Snakemake on CUDA;
  4. the default config (both experiments) on the GPU, then the same on all CPU cores of this
     machine, with wall times and the final test errors of both side by side;
  5. every conv preset for a few steps per width, in bf16 and fp32: steps per second and peak
     GPU memory of one training job (all of its runs).

`--rehearse` runs every step on the CPU at toy sizes, to check this script where there is no
GPU; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.dataset_files writes CIFAR-format files

from doubledescent import augment, config, data, models, provenance, train  # noqa: E402
from doubledescent.specs import GroupSpec  # noqa: E402
from tests.dataset_files import write_cifar  # noqa: E402

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
CONV_PRESETS = [
    "nakkiran_cifar10_cnn.yaml",
    "nakkiran_cifar10_resnet18.yaml",
    "greydanus_kobak_mnist1d_cnn.yaml",
]


def step(title: str):
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def done(start: float) -> None:
    print(f"   ({time.perf_counter() - start:.1f} s)", flush=True)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command; stop the check with its output if it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        print(proc.stdout[-5000:], proc.stderr[-5000:], sep="\n")
        sys.exit(f"gpu_check: failed: {' '.join(cmd)}")
    return proc


def describe_device(device: str) -> None:
    print(f"host {platform.node()}, {os.cpu_count()} CPU cores, {provenance.cpu()}")
    print(
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
        f"{torch.backends.cudnn.version()}"
    )
    if device == "cuda":
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            print(
                f"GPU {i}: {p.name}, {p.total_memory / 2**30:.0f} GiB, "
                f"compute capability {p.major}.{p.minor}, {p.multi_processor_count} SMs"
            )
        print(run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]).stdout)


def cuda_tests(device: str) -> None:
    proc = run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "cuda",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            str(REPO / "tests"),
        ],
        cwd=REPO,
    )
    print(proc.stdout.strip().splitlines()[-1])
    if device == "cuda" and "skipped" in proc.stdout.splitlines()[-1]:
        sys.exit("gpu_check: the cuda tests were skipped on a machine with a GPU")


def snakemake(workdir: Path, configfile: Path, device: str, *args: str) -> float:
    """Seconds for a whole Snakemake run of `configfile` in `workdir` on `device`."""
    start = time.perf_counter()
    run(
        [
            "snakemake",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(workdir),
            "--cores",
            "all",
            *args,
            "--configfile",
            str(configfile),
            "--config",
            f"device={device}",
        ]
    )
    return time.perf_counter() - start


def check_device_column(table: Path, device: str) -> pd.DataFrame:
    df = pd.read_parquet(table)
    if not df.device.str.startswith(device).all():
        sys.exit(f"gpu_check: {table} was not trained on {device}: {set(df.device)}")
    return df


def tiny_configs(device: str, work: Path) -> None:
    write_cifar(work / "data", "cifar10", n_train=60, n_test=30)
    for name in ("tiny", "tiny_cnn"):
        seconds = snakemake(work, REPO / "tests" / "configs" / f"{name}.yaml", device)
        df = check_device_column(work / "results" / name / "metrics.parquet", device)
        print(
            f"{name}: {df.run_id.nunique()} runs in {seconds:.1f} s, "
            f"final test error {df[df.epoch == df.epoch.max()].test_error.mean():.3f}"
        )


def default_config(epochs: int | None, toy: bool) -> Path:
    """config.yaml, or a copy with fewer epochs (and, rehearsing, fewer widths and seeds)."""
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    for exp in cfg["experiments"].values():
        if epochs:
            exp["training"]["epochs"] = epochs
        if toy:
            exp["widths"], exp["seeds"] = exp["widths"][:3], exp["seeds"][:1]
    path = Path(tempfile.mkdtemp()) / "default.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def final_errors(workdir: Path, device: str) -> pd.Series:
    frames = []
    for table in sorted((workdir / "results").glob("*/metrics.parquet")):
        df = check_device_column(table, device)
        frames.append(df[df.epoch == df.epoch.max()])
    df = pd.concat(frames)
    return df.groupby(["experiment", "regularizer", "width"]).test_error.mean()


def default_study(device: str, epochs: int | None, toy: bool, gpu_jobs: int) -> None:
    cfg = default_config(epochs, toy)
    times, errors = {}, {}
    for where in (device, "cpu"):
        work = Path(tempfile.mkdtemp())
        # Many small jobs may share one card: their kernels are too small to fill it.
        extra = ["--resources", f"gpu={gpu_jobs}"] if where == "cuda" else []
        times[where] = snakemake(work, cfg, where, *extra)
        errors[where] = final_errors(work, where)
        print(f"default config on {where}: {times[where]:.1f} s wall")
    if device != "cpu":
        print(
            f"GPU / all {os.cpu_count()} CPU cores: {times[device] / times['cpu']:.2f} "
            "of the CPU's time"
        )
    both = pd.DataFrame({"gpu": errors[device], "cpu": errors["cpu"]})
    both["diff"] = both.gpu - both.cpu
    print("final test error (mean over seeds) on both, by experiment, regularizer and width:")
    print(both.round(4).to_string())
    print("gpu - cpu by experiment and regularizer:")
    print(both["diff"].groupby(level=[0, 1]).agg(["mean", "min", "max"]).round(4).to_string())


def preset_groups(preset: str, toy: bool):
    """(experiment, group spec) for the first group of each width of a preset."""
    cfg = config.validate(config.read_yaml(REPO / "workflow" / "presets" / preset), SCHEMA)
    for name, exp in cfg["experiments"].items():
        widths = sorted(exp["widths"])[:2] if toy else sorted(exp["widths"])
        for width in widths:
            gid = next(g for g, runs in config.groups(exp).items() if runs[0].width == width)
            yield name, exp, config.group_spec(name, exp, gid)


def time_steps(spec: GroupSpec, device: str, steps: int) -> tuple[float, float]:
    """Steps per second and peak GPU memory (GiB) of a training job on random inputs."""
    source = data.SOURCES[spec.dataset.name]
    shape = models.input_shape(spec.model.name, source.shape)
    runs = list(spec.runs)
    group = train.make_group(spec, runs, shape, source.num_classes, device)
    batch = spec.training.batch_size
    x = torch.randn(len(runs), batch, *shape, device=device)
    y = torch.randint(0, 10, (len(runs), batch), device=device)
    aug = spec.training.augment

    def one_step():
        xb = augment.augment(x, group.augment_gens, aug) if aug.enabled else x
        train.train_step(group, xb, y)

    one_step()  # cuDNN's algorithm search and lazy initialization
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    return steps / seconds, peak


def conv_presets(device: str, steps: int, toy: bool) -> None:
    print(
        f"{'preset':34} {'width':>5} {'runs':>4} | {'bf16 steps/s':>12} {'GiB':>6} | "
        f"{'fp32 steps/s':>12} {'GiB':>6}"
    )
    for preset in CONV_PRESETS:
        for name, _, spec in preset_groups(preset, toy):
            cells = []
            for precision in ("bf16", "fp32"):
                training = replace(spec.training, precision=precision)
                rate, peak = time_steps(replace(spec, training=training), device, steps)
                cells.append(f"{rate:12.1f} {peak:6.2f}")
            print(
                f"{name:34} {spec.width:5d} {len(spec.runs):4d} | {cells[0]} | {cells[1]}",
                flush=True,
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the default study at 50 epochs")
    p.add_argument("--steps", type=int, default=10, help="timed steps per width and precision")
    p.add_argument(
        "--gpu-jobs",
        type=int,
        default=16,
        help="training jobs sharing the GPU at once in the default study",
    )
    p.add_argument(
        "--rehearse",
        action="store_true",
        help="run every step on the CPU at toy sizes (no GPU needed)",
    )
    args = p.parse_args()
    device = "cpu" if args.rehearse else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: torch sees no CUDA device (use --rehearse to try the script)")
    t = step("device")
    describe_device(device)
    done(t)
    t = step("tests marked cuda")
    cuda_tests(device)
    done(t)
    t = step("tiny configs through Snakemake")
    tiny_configs(device, Path(tempfile.mkdtemp()))
    done(t)
    t = step("the default config, GPU then all CPU cores")
    default_study(device, 50 if args.quick or args.rehearse else None, args.rehearse, args.gpu_jobs)
    done(t)
    t = step(f"conv presets, {args.steps} steps per width")
    conv_presets(device, 2 if args.rehearse else args.steps, args.rehearse)
    done(t)
    print("\ngpu_check: all steps passed")


if __name__ == "__main__":
    main()

"""`python -m doubledescent <step>`: the thin layer each Snakemake rule calls."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from doubledescent.errors import UserError
from doubledescent.targets import FIGURES


def _json(text: str, option: str):
    """A JSON argument; not JSON is the caller's mistake, not a bug."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{option} is not valid JSON ({e})") from None


def _metrics(path: str):
    """The metrics table a step reads."""
    from doubledescent.results import read_table

    return read_table(path, "metrics table")


def _data(args) -> None:
    from doubledescent import data

    data.save(data.build(_json(args.spec, "--spec")), args.out)


def _log(line: str) -> None:
    print(line, flush=True)


def _train(args) -> None:
    from doubledescent import gpus

    # A card of its own, chosen before torch starts CUDA (which reads CUDA_VISIBLE_DEVICES
    # once): N jobs on N GPUs, not N jobs on GPU 0.
    with gpus.one_card_per_job(args.device, log=_log):
        _train_group(args)


def _train_group(args) -> None:
    import platform

    from doubledescent import config, data, progress, train
    from doubledescent.io import write_table
    from doubledescent.provenance import now

    spec = config.spec_from_dict(_json(args.spec, "--spec"))
    progress_path = progress.path_for(args.checkpoint) if args.checkpoint else None
    out, *weights = args.out
    # Under weight reuse the groups' final weights lie side by side (the rule's second output).
    weights_in = weights and spec.reuse_from
    table = train.train_group(
        spec,
        data.load(args.data),
        device=args.device,
        threads=args.threads,
        log=_log,
        checkpoint_path=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        weights_in=Path(weights[0]).with_name(f"{weights_in}.pt") if weights_in else None,
        weights_out=weights[0] if weights else None,
        progress_every=args.progress_every,
        progress_path=progress_path,
    )
    # Where and when, for provenance: on a cluster each group may run on another node.
    write_table(table.assign(hostname=platform.node(), finished_at=now()), out)
    if args.checkpoint:  # the table is the result now; the checkpoint has done its job
        Path(args.checkpoint).unlink(missing_ok=True)
        progress_path.unlink(missing_ok=True)


def _collect(args) -> None:
    from doubledescent import results
    from doubledescent.io import write_table

    table = results.collect(args.groups)
    write_table(table, args.parquet)
    write_table(table, args.csv)


def _plot(args) -> None:
    from doubledescent import plots

    fig = plots.draw(args.figure, _metrics(args.metrics), _json(args.spec, "--spec"))
    plots.save(fig, args.out)


def _summarize(args) -> None:
    from doubledescent import results
    from doubledescent.io import atomic_path, write_table

    table = results.summary(_metrics(args.metrics), args.tol)
    write_table(table, args.out)
    if args.tex:
        with atomic_path(args.tex) as tmp:
            tmp.write_text(results.summary_latex(table))


def _optimal(args) -> None:
    from doubledescent import results
    from doubledescent.io import atomic_path, write_table

    table = results.optimal_regularization(_metrics(args.metrics))
    if table.empty:
        raise UserError("no weight-decay grid in this table (give a weight_decay list)")
    write_table(table, args.out)
    with atomic_path(args.tex) as tmp:
        tmp.write_text(results.optimal_regularization_latex(table))


def _provenance(args) -> None:
    from doubledescent.io import write_json
    from doubledescent.provenance import provenance

    config = _json(args.config, "--config")
    write_json(provenance(_metrics(args.metrics), args.experiment, config, args.repo), args.out)


# The repository's schema: the package is installed editable from the repo's src/.
SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def _config(args) -> dict:
    """The validated config of the files given, later files overriding earlier ones."""
    from doubledescent import config

    return config.load_files(args.configfile, SCHEMA)


def _estimate(args) -> None:
    from doubledescent import estimate

    print(estimate.report(_config(args), args.cores))


def _status(args) -> None:
    from doubledescent import status

    status.report(_config(args), args.results)


def _serve(args) -> None:
    from doubledescent import warm

    warm.serve(args.socket)


def _add_configfile(s) -> None:
    s.add_argument(
        "--configfile",
        nargs="+",
        default=["config.yaml"],
        help="config files, as given to snakemake (default: config.yaml)",
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="doubledescent", description=__doc__)
    sub = p.add_subparsers(dest="step", required=True)

    s = sub.add_parser("data", help="prepare a dataset (generate/load, label noise) as .npz")
    s.add_argument("--spec", required=True, help="the dataset section of the config, as JSON")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_data)

    s = sub.add_parser("train", help="train one group of runs, write its metrics table")
    s.add_argument("--spec", required=True, help="a group spec (config.group_spec), as JSON")
    s.add_argument("--data", required=True, help="the prepared dataset (.npz)")
    s.add_argument(
        "--out",
        nargs="+",
        required=True,
        help="the group's metrics (.parquet); under weight reuse, then its final weights (.pt)",
    )
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    s.add_argument("--threads", type=int, default=1, help="torch threads on the CPU")
    s.add_argument("--checkpoint", help="resume from / save the training state to this file")
    s.add_argument(
        "--checkpoint-every", type=int, default=25, help="epochs between saves (see train.Plan)"
    )
    s.add_argument(
        "--progress-every", type=float, default=30, help="seconds between progress lines"
    )
    s.set_defaults(func=_train)

    s = sub.add_parser("collect", help="concatenate group tables into the experiment's table")
    s.add_argument("groups", nargs="+")
    s.add_argument("--parquet", required=True)
    s.add_argument("--csv", required=True)
    s.set_defaults(func=_collect)

    s = sub.add_parser("plot", help="draw one figure from a metrics table")
    s.add_argument("--figure", required=True, choices=FIGURES, help="which figure to draw")
    s.add_argument("--metrics", required=True)
    s.add_argument("--spec", required=True, help="the experiment's plot section, as JSON")
    s.add_argument("--out", nargs="+", required=True, help="figure files (.pdf/.png/.svg)")
    s.set_defaults(func=_plot)

    s = sub.add_parser("summarize", help="peak and interpolation threshold per regularizer")
    s.add_argument("--metrics", required=True)
    s.add_argument("--tol", type=float, required=True, help="train error that counts as fit")
    s.add_argument("--out", required=True, help="the summary table (.csv)")
    s.add_argument("--tex", help="also write it as a booktabs LaTeX table here (.tex)")
    s.set_defaults(func=_summarize)

    s = sub.add_parser("optimal", help="weight decay chosen by validation and by the oracle")
    s.add_argument("--metrics", required=True)
    s.add_argument("--out", required=True, help="the table (.csv)")
    s.add_argument("--tex", required=True, help="the table as booktabs LaTeX (.tex)")
    s.set_defaults(func=_optimal)

    s = sub.add_parser("provenance", help="config, code version, libraries, hosts and times")
    s.add_argument("--metrics", required=True, help="the experiment's collected metrics")
    s.add_argument("--experiment", required=True)
    s.add_argument("--config", required=True, help="the experiment's resolved config, as JSON")
    s.add_argument("--repo", required=True, help="the workflow's folder, for its git commit")
    s.add_argument("--out", required=True, help="the provenance record (.json)")
    s.set_defaults(func=_provenance)

    s = sub.add_parser(
        "estimate", help="jobs, runs, core- or GPU-hours and wall time per experiment"
    )
    _add_configfile(s)
    s.add_argument("--cores", type=int, default=os.cpu_count(), help="cores to run on")
    s.set_defaults(func=_estimate)

    s = sub.add_parser("status", help="done, running and pending groups; the figure so far")
    _add_configfile(s)
    s.add_argument("--results", default="results", help="the results folder")
    s.set_defaults(func=_status)

    s = sub.add_parser(
        "serve", help="a local run's warm-start server (internal: doubledescent.warm)"
    )
    s.add_argument("--socket", required=True, help="the socket to listen on")
    s.set_defaults(func=_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as e:  # anything else is a bug: its traceback is what to read
        print(f"doubledescent {args.step}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

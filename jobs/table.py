"""One seeded ablation table from several sweeps: ``python -m jobs.table A.json B.json``.

Each file is what ``python -m jobs.tune ... --json FILE`` wrote. Sweeps that share the recipe
(``data.reproducible: true``, same data and schedule) pair up by seed: the table gives each
configuration's n, mean and t interval, and the paired difference against ``--baseline``
(default: Slow-only when present). See :mod:`training.tune.combine` and docs/tune.md.

    python -m jobs.table a.json b.json [--baseline KEY] [--configs K1,K2] [--out DIR]
        [--tag b.json=k2]   # b.json's configuration keys become KEY-k2 (same configs, other recipe)
    python -m jobs.table --smoke-test   # two generated sweep files (2 configs, 3 seeds)

With ``--out`` it also writes ``ablation_seeds.md``/``.csv`` (the aggregated table),
``ablation_trials.csv`` (every trial) and ``accuracy_vs_gflops_seeds.png`` there.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from raysf import console
from raysf.entry import command_parser, run_command
from training.tune.combine import combine_sweeps
from training.tune.report import aggregate_csv, format_aggregate_table, plot_aggregate, table_csv

#: What ``--smoke-test`` does for this command.
SMOKE_HELP = "combine two generated sweep files instead"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = command_parser("table", __doc__, SMOKE_HELP)
    parser.add_argument("sweeps", nargs="*", help="jobs.tune --json files")
    parser.add_argument("--baseline", default=None, help="configuration key to pair against")
    parser.add_argument(
        "--configs",
        default=None,
        help="comma-separated configuration keys to keep (default: every one in the files)",
    )
    parser.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="FILE=TAG",
        help="append -TAG to the configuration keys of FILE (one of the sweep files; repeatable)",
    )
    parser.add_argument("--level", type=float, default=0.95, help="confidence level")
    parser.add_argument("--out", default=None, help="folder for the table, CSVs and plot")
    parser.add_argument("--title", default="", help="the plot's title")
    args = parser.parse_args(argv)
    if not args.sweeps and not args.smoke_test:
        parser.error("give one or more jobs.tune --json files (or --smoke-test)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_command("table", args, lambda: _table(args))


def smoke_sweeps(folder: Path) -> list[Path]:
    """Two sweep files as jobs.tune writes them: Slow-only with seeds 0-2, then SlowFast with
    seeds 0-2 (accuracies made up: a fixed gap of about 10 points)."""
    configs = [
        ("slow_only", "Slow-only", 0.30, 0.044),
        ("tsc-a4-b4", "SlowFast T-conv", 0.40, 0.094),
    ]
    paths = []
    for key, label, top1, gflops in configs:
        rows = [
            {"key": f"{key}-s{seed}", "config_key": key, "seed": seed, "configuration": label,
             "pathways": "slow_only" if key == "slow_only" else "slowfast",
             "fusion": "none" if key == "slow_only" else "time_strided_conv", "alpha": 4,
             "beta_inv": 4, "fast_input": "rgb", "base_lr": 0.1, "top1": top1 + 0.01 * seed,
             "top5": 0.9, "gflops": gflops, "params": 1_000_000, "epochs": 1,
             "status": "finished", "error": None}
            for seed in range(3)
        ]  # fmt: skip
        paths.append(folder / f"{key}.json")
        paths[-1].write_text(json.dumps({"rows": rows}))
    return paths


def _table(args: argparse.Namespace) -> int:
    if not 0 < args.level < 1:
        raise ValueError(f"--level must be in (0, 1), got {args.level}")
    sweeps = args.sweeps or smoke_sweeps(Path(tempfile.mkdtemp(prefix="raysf-table-")))
    configs = [k.strip() for k in args.configs.split(",") if k.strip()] if args.configs else None
    tags = {}
    for item in args.tag:
        path, sep, tag = item.rpartition("=")
        if not sep or not path:
            raise ValueError(f"--tag: expected FILE=TAG, got {item!r}")
        tags[path] = tag
    rows, agg = combine_sweeps(sweeps, args.baseline, args.level, configs, tags)
    table = format_aggregate_table(agg)
    console.line(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "ablation_seeds.md").write_text(table + "\n")
        (out / "ablation_seeds.csv").write_text(aggregate_csv(agg))
        (out / "ablation_trials.csv").write_text(table_csv(rows))
        plot_aggregate(agg, out / "accuracy_vs_gflops_seeds.png", title=args.title)
        console.line(f"written to {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())

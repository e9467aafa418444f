"""The sweep's summary: ablation rows, the paper's Table-5 layout (Markdown, CSV), the accuracy
vs GFLOPs plot, and the choice of the best configuration; for a seeded sweep also the
aggregated table (mean ± t interval per configuration, paired differences against the baseline)
and its error-bar plot.

Rows are plain dicts so that the demo, the CLI and the tests can print or compare them:
``key, configuration, pathways, fusion, alpha, beta_inv, fast_input, base_lr, top1, top5,
gflops, params, epochs, status, error, trial_id, mlflow_run_id``. ``top1``/``top5`` are the last
reported clip-level validation accuracies (``None`` for a trial that failed before reporting).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

#: The columns of both CSV tables that describe a configuration: its cost and its recipe.
_RECIPE_COLUMNS = (
    "gflops",
    "params",
    "pathways",
    "fusion",
    "alpha",
    "beta_inv",
    "fast_input",
    "base_lr",
)

CSV_COLUMNS = (
    "configuration",
    "top1",
    "top5",
    *_RECIPE_COLUMNS,
    "seed",
    "epochs",
    "status",
    "error",
    "key",
    "config_key",
    "trial_id",
    "mlflow_run_id",
)


AGG_CSV_COLUMNS = (
    "configuration",
    "n",
    "top1_mean",
    "top1_std",
    "top1_ci",
    "top1_low",
    "top1_high",
    "top5_mean",
    "top5_std",
    "top5_ci",
    "diff_n",
    "diff_top1_mean",
    "diff_top1_std",
    "diff_top1_ci",
    "diff_top1_low",
    "diff_top1_high",
    "diff_top5_mean",
    "diff_top5_ci",
    "baseline",
    *_RECIPE_COLUMNS,
    "seeds",
    "missing",
    "key",
)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _signed(value: float) -> str:
    return f"{100 * value:+.1f}"


def sort_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Slow-only first, then by fusion, alpha, beta (the reading order of the paper's tables)."""
    order = {"none": 0, "time_to_channel": 1, "time_strided_sampling": 2, "time_strided_conv": 3}

    def key(r: dict[str, Any]):
        return (
            r["pathways"] != "slow_only",
            order.get(r["fusion"], 9),
            r["alpha"] or 0,
            r["beta_inv"] or 0,
            str(r["fast_input"]),
            r["base_lr"] or 0.0,
            r.get("seed") or 0,
        )

    return sorted(rows, key=key)


def format_table(rows: list[dict[str, Any]]) -> str:
    """The ablation table as Markdown: configuration | top-1 | top-5 | GFLOPs | params | status.

    Accuracies in percent (clip-level validation), GFLOPs per view at the training crop, params
    in millions. A seeded sweep adds a seed column after the configuration.
    """
    seeded = any(r.get("seed") is not None for r in rows)
    lines = [
        f"| configuration |{' seed |' if seeded else ''} top-1 | top-5 | GFLOPs | params (M) | "
        "status |",
        f"|---|{'---:|' if seeded else ''}---:|---:|---:|---:|---|",
    ]
    for r in sort_rows(rows):
        status = r["status"] if not r.get("error") else f"error: {r['error'][:60]}"
        seed = f" {r['seed']} |" if seeded else ""
        lines.append(
            f"| {r['configuration']} |{seed} {_pct(r['top1'])} | {_pct(r['top5'])} | "
            f"{r['gflops']:.4f} | {r['params'] / 1e6:.3f} | {status} |"
        )
    return "\n".join(lines)


def format_mean_ci(row: dict[str, Any], metric: str) -> str:
    """``52.3 ± 4.1`` (percent; ± the interval's half-width), ``52.3`` with one seed, ``-``."""
    mean, ci = row.get(f"{metric}_mean"), row.get(f"{metric}_ci")
    if mean is None:
        return "-"
    return _pct(mean) if ci is None else f"{_pct(mean)} ± {100 * ci:.1f}"


def format_diff(row: dict[str, Any]) -> str:
    """The paired top-1 difference: ``+12.3 [+5.1, +19.5] (n=3)``, or what is missing."""
    if row.get("is_baseline"):
        return "baseline"
    if row.get("baseline") is None or not row.get("diff_n"):
        return "-"
    mean, low = row["diff_top1_mean"], row["diff_top1_low"]
    if low is None:
        return f"{_signed(mean)} (n={row['diff_n']}, no interval)"
    return f"{_signed(mean)} [{_signed(low)}, {_signed(row['diff_top1_high'])}] (n={row['diff_n']})"


def format_aggregate_table(agg: list[dict[str, Any]]) -> str:
    """One row per configuration: seeds, top-1 and top-5 (mean ± half-width of the t interval),
    the top-1 standard deviation, the paired top-1 difference against the baseline with its
    interval, GFLOPs and params. Percent, clip-level validation accuracy."""
    level = agg[0]["level"] if agg else 0.95
    pct = f"{100 * level:g} %"
    base = next((r["baseline"] for r in agg if r.get("baseline")), None)
    diff_head = f"Δ top-1 vs {base} [{pct} CI]" if base else "Δ top-1"
    lines = [
        f"| configuration | n | top-1 (± {pct} CI) | top-1 std | top-5 (± {pct} CI) | "
        f"{diff_head} | GFLOPs | params (M) | missing seeds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sort_rows(agg):
        std = "-" if r["top1_std"] is None else f"{100 * r['top1_std']:.1f}"
        missing = ", ".join(map(str, r["missing"])) or "-"
        lines.append(
            f"| {r['configuration']} | {r['n']} | {format_mean_ci(r, 'top1')} | {std} | "
            f"{format_mean_ci(r, 'top5')} | {format_diff(r)} | {r['gflops']:.4f} | "
            f"{r['params'] / 1e6:.3f} | {missing} |"
        )
    return "\n".join(lines)


def aggregate_csv(agg: list[dict[str, Any]]) -> str:
    return _csv_text(agg, AGG_CSV_COLUMNS, joined=("seeds", "missing"))


def table_csv(rows: list[dict[str, Any]]) -> str:
    return _csv_text(rows, CSV_COLUMNS)


def _csv_text(
    rows: list[dict[str, Any]], columns: tuple[str, ...], joined: tuple[str, ...] = ()
) -> str:
    """``rows`` (in :func:`sort_rows` order) as CSV with ``columns``: ``None`` as an empty
    cell, the lists in the ``joined`` columns space-separated."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for r in sort_rows(rows):
        row = {k: ("" if r.get(k) is None else r.get(k)) for k in columns}
        for k in joined:
            row[k] = " ".join(map(str, r[k]))
        writer.writerow(row)
    return buf.getvalue()


def point_label(row: dict[str, Any]) -> str:
    """The label of a row's point in the scatter: its configuration without ``SlowFast``."""
    return str(row["configuration"]).removeprefix("SlowFast ").strip()


def scatter_figure(rows: list[dict[str, Any]]):
    """The accuracy-vs-GFLOPs figure: one point per configuration with a reported top-1,
    labelled with it, one colour and marker per fusion type (Slow-only its own)."""
    import matplotlib  # heavy; only the summary plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after use("Agg"): no display needed

    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["top1"] is None:
            continue
        name = "Slow-only" if r["pathways"] == "slow_only" else r["fusion"]
        groups.setdefault(name, []).append(r)
    markers = {"Slow-only": "s", "none": "x", "time_to_channel": "o"}
    markers.update({"time_strided_sampling": "^", "time_strided_conv": "D"})
    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    for name, members in sorted(groups.items()):
        xs = [m["gflops"] for m in members]
        ys = [100 * m["top1"] for m in members]
        ax.scatter(xs, ys, label=name, marker=markers.get(name, "o"), s=40)
        for m, x, y in zip(members, xs, ys, strict=True):
            ax.annotate(
                point_label(m), (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points"
            )
    ax.set_xlabel("GFLOPs per view (training crop)")
    ax.set_ylabel("clip-level validation top-1 (%)")
    ax.set_title("accuracy vs computation, one point per configuration")
    ax.grid(alpha=0.3)
    ax.margins(x=0.15, y=0.1)
    if groups:
        ax.legend(fontsize=8, title="fusion", title_fontsize=8)
    fig.tight_layout()
    return fig


def plot_accuracy_vs_gflops(rows: list[dict[str, Any]], path: str | Path) -> None:
    """:func:`scatter_figure` as a PNG."""
    import matplotlib.pyplot as plt  # heavy; only the summary plots need it

    fig = scatter_figure(rows)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_aggregate(agg: list[dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Two panels (PNG): mean top-1 against GFLOPs with the t interval as error bars, one marker
    per fusion type; and the paired top-1 difference to the baseline per configuration, with
    its interval and the zero line (a bar that crosses it is not a measured difference)."""
    import matplotlib  # heavy; only the summary plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after use("Agg"): no display needed

    rows = [r for r in sort_rows(agg) if r["top1_mean"] is not None]
    diffs = [r for r in rows if r.get("diff_top1_mean") is not None]
    fig, axes = plt.subplots(1, 2 if diffs else 1, figsize=(10.5 if diffs else 5.6, 3.9))
    ax = axes[0] if diffs else axes
    markers = {"Slow-only": "s", "none": "x", "time_to_channel": "o"}
    markers.update({"time_strided_sampling": "^", "time_strided_conv": "D"})
    for r in rows:
        group = "Slow-only" if r["pathways"] == "slow_only" else r["fusion"]
        err = 0 if r["top1_ci"] is None else 100 * r["top1_ci"]
        ax.errorbar(
            r["gflops"], 100 * r["top1_mean"], yerr=err, fmt=markers.get(group, "o"), capsize=3
        )
        ax.annotate(
            _short(r),
            (r["gflops"], 100 * r["top1_mean"]),
            fontsize=6,
            xytext=(4, 2),
            textcoords="offset points",
        )
    ax.set_xlabel("GFLOPs per view")
    ax.set_ylabel("validation top-1 (%), mean ± CI")
    ax.grid(alpha=0.3)
    if diffs:
        ax2 = axes[1]
        ys = range(len(diffs))
        means = [100 * r["diff_top1_mean"] for r in diffs]
        errs = [0 if r["diff_top1_ci"] is None else 100 * r["diff_top1_ci"] for r in diffs]
        ax2.errorbar(means, list(ys), xerr=errs, fmt="o", capsize=3)
        ax2.axvline(0, color="k", lw=0.8)
        ax2.set_yticks(list(ys), [_short(r) for r in diffs], fontsize=7)
        ax2.set_xlabel(f"paired Δ top-1 vs {diffs[0]['baseline']} (points), mean ± CI")
        ax2.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _short(r: dict[str, Any]) -> str:
    """A plot label: the configuration without its leading "SlowFast "."""
    return r["configuration"].replace("SlowFast ", "")


def best_row(rows: list[dict[str, Any]], metric: str = "top1") -> dict[str, Any] | None:
    """The finished row with the highest ``metric`` (ties: fewer GFLOPs); ``None`` if none."""
    ok = [r for r in rows if r.get(metric) is not None and not r.get("error")]
    if not ok:
        return None
    return max(ok, key=lambda r: (r[metric], -r["gflops"]))


def write_summary(
    rows: list[dict[str, Any]],
    out_dir: str | Path,
    agg: list[dict[str, Any]] | None = None,
    title: str = "",
) -> dict[str, Path]:
    """Write ``ablation.md``, ``ablation.csv`` and ``accuracy_vs_gflops.png`` into ``out_dir``;
    with ``agg`` (a seeded sweep) also ``ablation_seeds.md``, ``ablation_seeds.csv`` and
    ``accuracy_vs_gflops_seeds.png`` (error bars)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out / "ablation.md",
        "csv": out / "ablation.csv",
        "plot": out / "accuracy_vs_gflops.png",
    }
    paths["markdown"].write_text(format_table(rows) + "\n")
    paths["csv"].write_text(table_csv(rows))
    plot_accuracy_vs_gflops(rows, paths["plot"])
    if agg is not None:
        paths["seeds_markdown"] = out / "ablation_seeds.md"
        paths["seeds_csv"] = out / "ablation_seeds.csv"
        paths["seeds_plot"] = out / "accuracy_vs_gflops_seeds.png"
        paths["seeds_markdown"].write_text(format_aggregate_table(agg) + "\n")
        paths["seeds_csv"].write_text(aggregate_csv(agg))
        plot_aggregate(agg, paths["seeds_plot"], title)
    return paths

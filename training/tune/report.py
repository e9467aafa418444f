"""The sweep's summary: ablation rows, the paper's Table-5 layout (Markdown, CSV), the accuracy
vs GFLOPs plot, and the choice of the best configuration.

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

CSV_COLUMNS = (
    "configuration",
    "top1",
    "top5",
    "gflops",
    "params",
    "pathways",
    "fusion",
    "alpha",
    "beta_inv",
    "fast_input",
    "base_lr",
    "epochs",
    "status",
    "error",
    "key",
    "trial_id",
    "mlflow_run_id",
)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


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
        )

    return sorted(rows, key=key)


def format_table(rows: list[dict[str, Any]]) -> str:
    """The ablation table as Markdown: configuration | top-1 | top-5 | GFLOPs | params | status.

    Accuracies in percent (clip-level validation), GFLOPs per view at the training crop, params
    in millions.
    """
    lines = [
        "| configuration | top-1 | top-5 | GFLOPs | params (M) | status |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in sort_rows(rows):
        status = r["status"] if not r.get("error") else f"error: {r['error'][:60]}"
        lines.append(
            f"| {r['configuration']} | {_pct(r['top1'])} | {_pct(r['top5'])} | "
            f"{r['gflops']:.4f} | {r['params'] / 1e6:.3f} | {status} |"
        )
    return "\n".join(lines)


def table_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for r in sort_rows(rows):
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_COLUMNS})
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


def best_row(rows: list[dict[str, Any]], metric: str = "top1") -> dict[str, Any] | None:
    """The finished row with the highest ``metric`` (ties: fewer GFLOPs); ``None`` if none."""
    ok = [r for r in rows if r.get(metric) is not None and not r.get("error")]
    if not ok:
        return None
    return max(ok, key=lambda r: (r[metric], -r["gflops"]))


def write_summary(rows: list[dict[str, Any]], out_dir: str | Path) -> dict[str, Path]:
    """Write ``ablation.md``, ``ablation.csv`` and ``accuracy_vs_gflops.png`` into ``out_dir``."""
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
    return paths

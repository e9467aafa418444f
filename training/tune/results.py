"""A sweep's results as ablation rows: one per point, in the sweep's order, with its status.

Statuses: ``finished`` (reached the last epoch), ``stopped early`` (ASHA), ``error`` (with the
first line of its error), ``not run`` (an interrupted sweep: the trial never reported, or Tune
had not created it yet). A trial's folder is named ``<point key>_<trial id>``
(:func:`trial_dirname`), so a result that comes back without its config is still matched.

A failed trial writes its error as JSON into its folder (:func:`write_error_record`,
``raysf_error.json``): a trial that failed in an earlier session of a resumed sweep is reported
from that record, else from the text Tune writes beside it (``error.txt``). Nothing read back
from the sweep's storage is unpickled (Tune's ``error.pkl`` is left alone): that storage is
writable by every node, and unpickling runs code.

:func:`aggregate_rows` folds the rows of a seeded sweep into one row per configuration: n, mean,
standard deviation and t interval of top-1/top-5 over the seeds that finished, and the paired
difference against a baseline configuration over the seeds both finished
(:mod:`training.tune.stats`). A trial that failed, was stopped early or did not run is a missing
seed, never a zero.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pyarrow.fs

from raysf.storage import StorageLocation
from training.config import TrainJobConfig
from training.tune.space import Point
from training.tune.stats import Summary, paired_differences, summarize

#: Columns of an aggregated row that describe the configuration (copied from its trials' rows).
CONFIG_COLUMNS = (
    "configuration",
    "pathways",
    "fusion",
    "alpha",
    "beta_inv",
    "fast_input",
    "base_lr",
    "gflops",
    "params",
)


@dataclass(frozen=True)
class PreparedPoint:
    """A point with its validated training job and its cost."""

    point: Point
    job: TrainJobConfig
    gflops: float
    params: int


def collect_rows(results, prepared: list[PreparedPoint], epochs: int) -> list[dict[str, Any]]:
    """One ablation row per point, in the sweep's order, from the ``ResultGrid``.

    Errors are kept with their message. An interrupted sweep's grid holds only the trials Tune
    had created (it expands the grid lazily, up to ``max_concurrent`` ahead): every other point
    is reported as a trial not run yet.
    """
    by_key = {pp.point.key: pp for pp in prepared}
    found: dict[str, dict[str, Any]] = {}
    for result in results:
        key = _result_key(result)
        if key not in by_key:
            continue
        metrics = result.metrics or {}
        done_epochs = int(metrics["epoch"]) + 1 if "epoch" in metrics else 0
        error = _trial_error(result)
        if error:
            status = "error"
        elif done_epochs == 0:
            status = "not run"  # the sweep was interrupted before this trial reported
        elif done_epochs < epochs:
            status = "stopped early"
        else:
            status = "finished"
        found[key] = _row(by_key[key], metrics, done_epochs, status, error)
    return [found.get(pp.point.key) or _row(pp, {}, 0, "not run", None) for pp in prepared]


def trial_dirname(key: str, trial_id: str) -> str:
    """A trial's folder: ``<point key>_<trial id>`` (Tune's trial ids look like ``1f2e3_00001``)."""
    return f"{key}_{trial_id}"


def _result_key(result) -> str | None:
    """The point of a trial's result: from its config, else from its folder (``trial_dirname``).

    A trial that failed before its first report, in an earlier session of a resumed sweep,
    comes back from ``Tuner.restore`` without a config.
    """
    key = (result.config or {}).get("point", {}).get("key")
    if key is None and result.path:
        key = result.path.rstrip("/").rsplit("/", 1)[-1].rsplit("_", 2)[0]
    return key


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: The JSON error record a failed trial leaves in its folder.
ERROR_RECORD = "raysf_error.json"
#: The text Tune itself appends to a failed trial's folder (``ray.air.constants.EXPR_ERROR_FILE``).
TUNE_ERROR_TEXT = "error.txt"
MAX_ERROR_CHARS = 300
#: The last line of a Python traceback: ``package.module.SomeError: message``.
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)): ?(.*)$")


def error_summary(error: BaseException) -> str:
    """``Type: first line of the message`` of a trial's exception (at most 300 characters).

    A ``RayTaskError`` is reported as the trial's own exception that it wraps.
    """
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        error = cause
    lines = [ln.strip() for ln in _ANSI.sub("", str(error)).splitlines() if ln.strip()] or [""]
    message, rest = lines[0], lines[1:]
    while message.endswith(":") and rest:  # "Training failed due to worker errors:" ...
        message = f"{message} {rest.pop(0)}"
    return f"{type(error).__name__}: {message}"[:MAX_ERROR_CHARS]


def write_error_record(trial: StorageLocation, error: BaseException) -> None:
    """Write ``{"error": error_summary(error)}`` to ``raysf_error.json`` in the ``trial``'s
    folder."""
    record = json.dumps({"error": error_summary(error)}).encode()
    trial.join(ERROR_RECORD).write_bytes_atomic(record)


def _trial_error(result) -> str | None:
    """The first line of a trial's error, or None.

    A trial that failed in an earlier session of a resumed sweep comes back from
    ``Tuner.restore`` without its error (Tune looks in the new session's staging folder); its
    record is still in the trial's storage folder, and is read from there.
    """
    if result.error is not None:
        return error_summary(result.error)
    if result.path and not (result.metrics or {}).get("done"):
        return _stored_error(result.filesystem, result.path)
    return None


def _stored_error(filesystem, trial_path: str) -> str | None:
    """The trial's JSON record, else the last exception line of Tune's ``error.txt``; never
    unpickled."""
    fs = filesystem or pyarrow.fs.LocalFileSystem()
    text = _read_text(fs, f"{trial_path}/{ERROR_RECORD}")
    if text is not None:
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("error"), str):
            return record["error"][:MAX_ERROR_CHARS]
    text = _read_text(fs, f"{trial_path}/{TUNE_ERROR_TEXT}")
    return None if text is None else summary_of_tune_text(text)


def summary_of_tune_text(text: str) -> str:
    """``Type: message`` from the text Tune writes for a failed trial: its last failure's last
    traceback line (``ValueError: bad alpha``), else that failure's first line."""
    failure = _ANSI.sub("", text).rsplit("Failure # ", 1)[-1]
    lines = [ln.rstrip() for ln in failure.splitlines()[1:] if ln.strip()]
    for line in reversed(lines):
        found = _EXCEPTION_LINE.match(line)
        if found:
            name = found[1].rsplit(".", 1)[-1]
            return f"{name}: {found[2].strip()}"[:MAX_ERROR_CHARS]
    return (lines[0].strip() if lines else "error (no message)")[:MAX_ERROR_CHARS]


def _read_text(fs, path: str) -> str | None:
    try:
        with fs.open_input_stream(path) as stream:
            return stream.read().decode("utf-8", errors="replace")
    except (OSError, FileNotFoundError):
        return None


def _row(pp: PreparedPoint, metrics: dict, epochs: int, status: str, error: str | None) -> dict:
    return {
        "key": pp.point.key,
        "config_key": pp.point.config_key,
        "seed": pp.point.seed,
        "configuration": pp.point.label,
        **pp.point.dims,
        "top1": metrics.get("val_top1"),
        "top5": metrics.get("val_top5"),
        "gflops": pp.gflops,
        "params": pp.params,
        "epochs": epochs,
        "status": status,
        "error": error,
        "trial_id": metrics.get("trial_id"),
        "mlflow_run_id": None,
    }


def default_baseline(
    rows: list[dict[str, Any]], baseline: str | None, option: str = "report.baseline"
) -> str | None:
    """The configuration key paired differences are taken against: ``baseline`` (which must be
    one of the sweep's configurations; the error names ``option``), else ``slow_only`` when it
    was swept, else ``None``."""
    keys = list(dict.fromkeys(r["config_key"] for r in rows))
    if baseline is not None:
        if baseline not in keys:
            raise ValueError(f"{option}: {baseline!r} is not a configuration of the sweep {keys}")
        return baseline
    return "slow_only" if "slow_only" in keys else None


def aggregate_rows(
    rows: list[dict[str, Any]], baseline: str | None = None, level: float = 0.95
) -> list[dict[str, Any]]:
    """One row per configuration (in first-seen order) with its seed statistics.

    Each aggregated row holds the configuration's columns (:data:`CONFIG_COLUMNS`), ``key``
    (the configuration key), ``seeds`` (seeds with a result), ``missing`` (seeds that failed,
    stopped early or did not run), ``n``, and for ``top1``/``top5``: ``<m>_mean``, ``<m>_std``,
    ``<m>_ci`` (half-width), ``<m>_low``, ``<m>_high``. Against the ``baseline`` configuration
    (``None``: no differences) it adds ``diff_n``, ``diff_top1_mean``/``_std``/``_ci``/``_low``/
    ``_high`` (and the same for top-5), computed from the per-seed differences of the seeds
    both finished; the baseline's own row has ``is_baseline`` True and no differences.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["config_key"], []).append(r)
    per_seed = {key: _values_by_seed(members) for key, members in groups.items()}
    out = []
    for key, members in groups.items():
        values = per_seed[key]
        agg: dict[str, Any] = {"key": key, **{c: members[0][c] for c in CONFIG_COLUMNS}}
        agg["seeds"] = sorted(s for s, v in values["top1"].items() if v is not None)
        agg["missing"] = sorted(s for s, v in values["top1"].items() if v is None)
        agg["n"] = len(agg["seeds"])
        agg["is_baseline"] = key == baseline
        agg["baseline"] = baseline
        agg["level"] = level
        for metric in ("top1", "top5"):
            agg.update(summary_fields(metric, summarize(values[metric].values(), level)))
        if baseline is not None and key != baseline:
            base = per_seed[baseline]
            diffs = {m: paired_differences(values[m], base[m]) for m in ("top1", "top5")}
            agg["diff_n"] = len(diffs["top1"])
            agg["diff_seeds"] = sorted(diffs["top1"])
            for metric in ("top1", "top5"):
                agg.update(
                    summary_fields(f"diff_{metric}", summarize(diffs[metric].values(), level))
                )
        out.append(agg)
    return out


def summary_fields(prefix: str, summary: Summary) -> dict[str, Any]:
    """``<prefix>_mean``, ``_std``, ``_ci`` (half-width), ``_low``, ``_high`` of a summary."""
    return {
        f"{prefix}_mean": summary.mean,
        f"{prefix}_std": summary.std,
        f"{prefix}_ci": summary.half_width,
        f"{prefix}_low": summary.low,
        f"{prefix}_high": summary.high,
    }


def _values_by_seed(members: list[dict[str, Any]]) -> dict[str, dict[int, float | None]]:
    """``{"top1": {seed: value or None}, "top5": ...}``: only finished trials have a value."""
    out: dict[str, dict[int, float | None]] = {"top1": {}, "top5": {}}
    for i, r in enumerate(members):
        seed = r["seed"] if r.get("seed") is not None else i
        done = r["status"] == "finished" and not r.get("error")
        for metric in out:
            out[metric][seed] = r.get(metric) if done else None
    return out

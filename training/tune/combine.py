"""One seeded ablation table from several sweeps (their ``jobs.tune --json`` files).

A paper table is often measured in parts: the two ends first, a fusion later, another seed
after that. Sweeps that share the recipe (same data, schedule and ``data.reproducible: true``)
pair up by seed, so their trial rows can be aggregated together: :func:`combine_sweeps` reads
the rows of every file, refuses a trial that two files both hold (same configuration and seed),
and aggregates them with :func:`training.tune.results.aggregate_rows` (mean, standard deviation
and t interval per configuration; paired differences against ``baseline`` over the seeds both
finished). Whether the recipes really matched is the caller's to know: the rows carry only the
swept dimensions.

Two sweeps of the same configurations under different recipes (e.g. ``data.decode.clips_per_decode``
1 and 2) compare as one table when one file is *tagged*: its configuration keys become
``KEY-TAG`` and its labels ``LABEL (TAG)``, so its trials pair with the other file's by seed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from training.tune.results import CONFIG_COLUMNS, aggregate_rows, default_baseline

_ROW_KEYS = ("key", "config_key", "seed", "top1", "top5", *CONFIG_COLUMNS)


def read_sweep_rows(path: str | Path) -> list[dict[str, Any]]:
    """The trial rows of one ``jobs.tune --json`` file; errors name the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such sweep file") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{path}: no trial rows (expected the output of jobs.tune --json)")
    for i, row in enumerate(rows):
        missing = [k for k in _ROW_KEYS if k not in row]
        if missing:
            raise ValueError(f"{path}: rows[{i}] lacks {missing}")
    return rows


def combine_sweeps(
    paths: Sequence[str | Path],
    baseline: str | None = None,
    level: float = 0.95,
    configs: Sequence[str] | None = None,
    tags: Mapping[str | Path, str] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(rows, aggregated)`` of the sweeps in ``paths`` (see the module docstring).

    ``baseline``: the configuration key to pair against (``None``: ``slow_only`` when present,
    else no differences); it must be one of the combined configurations.
    ``configs``: keep only these configuration keys (e.g. the one row that another table's
    sweep shares with this one); each must be found in some file.
    ``tags``: ``{path: tag}`` for files whose configuration keys get ``-tag`` (``baseline``
    and ``configs`` name the tagged keys); each path must be one of ``paths``.
    """
    tag_of = _tags(paths, tags or {})
    rows: list[dict[str, Any]] = []
    owner: dict[tuple[str, Any], Path] = {}
    found: set[str] = set()
    for path in map(Path, paths):
        tag = tag_of.get(path)
        for row in read_sweep_rows(path):
            if tag:
                row = _tagged(row, tag)
            found.add(row["config_key"])
            if configs is not None and row["config_key"] not in configs:
                continue
            trial = (row["config_key"], row["seed"])
            if trial in owner:
                raise ValueError(
                    f"{path}: trial {row['config_key']} seed {row['seed']} is also in "
                    f"{owner[trial]}; combine each trial once"
                )
            owner[trial] = path
            rows.append(row)
    unknown = [key for key in configs or () if key not in found]
    if unknown:
        raise ValueError(
            f"--configs: {unknown} in none of the sweep files (they hold {sorted(found)})"
        )
    baseline = default_baseline(rows, baseline, option="--baseline")
    return rows, aggregate_rows(rows, baseline, level)


def _tags(paths: Sequence[str | Path], tags: Mapping[str | Path, str]) -> dict[Path, str]:
    """``tags`` keyed by ``Path``; a tag for a file not combined, or an empty or spaced tag, is
    an error naming ``--tag``."""
    known = {Path(p) for p in paths}
    out: dict[Path, str] = {}
    for path, tag in tags.items():
        if Path(path) not in known:
            raise ValueError(
                f"--tag: {path} is not one of the sweep files {sorted(map(str, known))}"
            )
        if not tag or any(c.isspace() for c in tag):
            raise ValueError(f"--tag: the tag of {path} must be a non-empty word, got {tag!r}")
        out[Path(path)] = tag
    return out


def _tagged(row: dict[str, Any], tag: str) -> dict[str, Any]:
    """The row under its tagged configuration key and label."""
    key = f"{row['config_key']}-{tag}"
    label = row.get("configuration") or row["config_key"]
    return {**row, "key": f"{key}-s{row['seed']}", "config_key": key,
            "configuration": f"{label} ({tag})"}  # fmt: skip

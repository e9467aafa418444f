"""Typed configuration loading shared by every entry point.

A config is a tree of frozen dataclasses. :func:`load_config` reads a YAML file, applies dotted
``key=value`` overrides from the command line, and builds the dataclass tree, checking every key
and type on the way. Errors name the file and the dotted key, so a typo in a 200-line YAML or in a
sweep override fails at start with a message that says where::

    jobs/train.yaml: optim.base_lrr: unknown key (did you mean 'base_lr'?)

Lower layers never see YAML or dicts: they receive the typed objects (or plain values taken from
them). Dataclasses may define ``validate(self)`` for cross-field checks; it runs after
construction, bottom-up, and its ``ValueError`` message is prefixed with the key path (with the
field's dotted key when the message starts with ``"<field>: "``). A dataclass whose keys were
renamed lists them in a ``REPLACED_KEYS`` class attribute (old key -> what replaced it, relative
to the section): an old key then fails naming its replacement (``<file>: <old dotted key> was
replaced by <new dotted key>``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


def _where(source: str | None, key: str) -> str:
    prefix = f"{source}: " if source else ""
    return f"{prefix}{key or '<root>'}"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, source: str | None) -> Any:
    """Check ``value`` against annotation ``tp`` and convert lists/dicts/dataclasses."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        return _coerce_union(value, tp, key, source)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{_where(source, key)}: {value!r} is not one of {list(choices)}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{_where(source, key)}: expected a mapping, got {value!r}")
        return build(tp, value, source=source, prefix=key)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        return _coerce_sequence(value, tp, key, source)
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{_where(source, key)}: expected a mapping, got {value!r}")
        kt, vt = get_args(tp) or (Any, Any)
        return {
            _coerce(k, kt, f"{key}.{k}", source): _coerce(v, vt, f"{key}.{k}", source)
            for k, v in value.items()
        }
    return _coerce_scalar(value, tp, key, source)


def _coerce_union(value: Any, tp: Any, key: str, source: str | None) -> Any:
    """``X | Y | None``: ``None`` where allowed, else the first member that accepts ``value``."""
    args = get_args(tp)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"{_where(source, key)}: must not be null")
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _coerce(value, arg, key, source)
        except ConfigError as exc:
            errors.append(str(exc))
    raise ConfigError(
        errors[0]
        if len(errors) == 1
        else f"{_where(source, key)}: {value!r} matches none of {_type_name(tp)}"
    )


def _coerce_sequence(value: Any, tp: Any, key: str, source: str | None) -> Any:
    """Lists and tuples (fixed-length tuples check their length and each item's type)."""
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{_where(source, key)}: expected a list, got {value!r}")
    origin, args = get_origin(tp), get_args(tp)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise ConfigError(
                f"{_where(source, key)}: expected {len(args)} items, got {len(value)}"
            )
        return tuple(
            _coerce(v, a, f"{key}[{i}]", source)
            for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    item = args[0] if args else Any
    items = [_coerce(v, item, f"{key}[{i}]", source) for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items


def _coerce_scalar(value: Any, tp: Any, key: str, source: str | None) -> Any:
    """float (ints and YAML 1.1 exponent strings accepted), int, bool, str, other classes."""
    if tp is float:
        if isinstance(value, str):
            # PyYAML reads YAML 1.1, where "5e-5" (no dot) is a string, not a float.
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{_where(source, key)}: expected a number, got {value!r}")
        return float(value)
    expected = {int: "an integer", bool: "true or false", str: "a string"}
    if tp in expected:
        ok = isinstance(value, tp) and (tp is bool or not isinstance(value, bool))
        if not ok:
            raise ConfigError(f"{_where(source, key)}: expected {expected[tp]}, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{_where(source, key)}: expected {_type_name(tp)}, got {value!r}")
    return value


def build(
    cls: type[T], data: Mapping[str, Any], *, source: str | None = None, prefix: str = ""
) -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if name not in fields:
            replaced = getattr(cls, "REPLACED_KEYS", {}).get(name)
            if replaced is not None:
                new = f"{prefix}.{replaced}" if prefix else replaced
                raise ConfigError(f"{_where(source, key)} was replaced by {new}")
            close = difflib.get_close_matches(str(name), list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{_where(source, key)}: unknown key{hint}; known keys: {sorted(fields)}"
            )
        kwargs[name] = _coerce(value, hints[name], key, source)
    for name, field in fields.items():
        if (
            name not in kwargs
            and field.default is dataclasses.MISSING
            and field.default_factory is dataclasses.MISSING
        ):
            key = f"{prefix}.{name}" if prefix else name
            raise ConfigError(f"{_where(source, key)}: required key is missing")
    try:
        obj = cls(**kwargs)
        validate = getattr(obj, "validate", None)
        if callable(validate):
            validate()
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(_validation_message(exc, source, prefix, fields)) from exc
    return obj


def _validation_message(
    exc: Exception, source: str | None, prefix: str, fields: Mapping[str, Any]
) -> str:
    """``exc`` prefixed with where it happened: the field's dotted key when the message starts
    with ``"<field>: "``, else the section's key."""
    if not prefix:  # root-level checks name their keys themselves (they span sections)
        return f"{source or 'config'}: {exc}"
    name, sep, rest = str(exc).partition(": ")
    if sep and name in fields:
        return f"{_where(source, f'{prefix}.{name}')}: {rest}"
    return f"{_where(source, prefix)}: {exc}"


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value`` into (["a", "b", "c"], value); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected dotted.key=value")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {text!r}: empty key segment")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {exc}") from exc
    return parts, value


def overridden_keys(overrides: Sequence[str]) -> set[str]:
    """The dotted keys that ``overrides`` set (``{"data.dataset", ...}``)."""
    return {".".join(parse_override(text)[0]) for text in overrides}


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with dotted overrides applied (creating nested mappings)."""
    out = _deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {'.'.join(parts[: i + 1])} is not a mapping")
            node = child
        node[parts[-1]] = value
    return out


def _deepcopy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deepcopy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deepcopy(v) for v in data]
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    base: Mapping[str, Any] | None = None,
) -> T:
    """Read ``path`` (optional), merge over ``base``, apply ``overrides``, build ``cls``."""
    data = deep_merge(dict(base or {}), read_yaml(path) if path else {})
    data = apply_overrides(data, overrides)
    source = str(path) if path else "config"
    return build(cls, data, source=source)


def deep_merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """``b`` merged over a copy of ``a``, recursively for nested mappings."""
    out = _deepcopy(dict(a))
    for k, v in b.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = _deepcopy(v)
    return out


def with_overrides(cfg: T, overrides: Sequence[str] = (), source: str = "overrides") -> T:
    """A copy of the typed config ``cfg`` with dotted ``key=value`` overrides, validated again.

    With no overrides this re-validates a config changed with ``dataclasses.replace`` (which
    runs no ``validate``): entry points apply their presets (``--smoke-test``, the demo) as
    typed replacements, then the user's overrides last, through this one function.
    """
    return build(type(cfg), apply_overrides(to_dict(cfg), overrides), source=source)


def to_dict(obj: Any) -> Any:
    """Dataclass tree -> plain dict (tuples become lists) for YAML, MLflow and checkpoints."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists kept as values)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def dump_yaml(obj: Any) -> str:
    """Serialise a config (dataclass or dict) as YAML that :func:`load_config` reads back."""
    return yaml.safe_dump(to_dict(obj), sort_keys=False)


__all__ = [
    "ConfigError",
    "apply_overrides",
    "build",
    "deep_merge",
    "dump_yaml",
    "flatten",
    "load_config",
    "overridden_keys",
    "parse_override",
    "read_yaml",
    "to_dict",
    "with_overrides",
]

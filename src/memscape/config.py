"""Declared, validated options: dataclass fields with their type, range, choices and help.

A config is a dataclass whose fields are made by :func:`option`. :func:`make_config`
merges sources of values (defaults, a YAML/JSON file, command-line strings such as
``"2,8,32"``), coerces each to its field's type and checks it against the declared
range and choices, naming the option in every error, before any work is done
(scikit-learn's declared-parameter style). :func:`option_spec` describes the options
for help texts and generated docs. Only the standard library is imported here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["field_types", "load_config_file", "make_config", "option", "option_spec"]


def option(
    default: Any,
    help: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Sequence[Any] | None = None,
    nonempty: bool = True,
) -> Any:
    """A config field with its help, range and choices, validated by :func:`build_config`.

    Bounds apply to the value, or to every item of a tuple option; tuples must be
    non-empty unless ``nonempty=False``; ``None`` passes when the type admits it.

    Args:
        default: the documented default run's value.
        help: one line for ``memscape run NAME --help`` and the docs.
        ge: inclusive lower bound.
        gt: exclusive lower bound.
        le: inclusive upper bound.
        lt: exclusive upper bound.
        choices: allowed values (strings or numbers).
        nonempty: a tuple option needs at least one item.
    """
    meta: dict[str, Any] = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt}
    meta.update(nonempty=nonempty, choices=tuple(choices) if choices is not None else None)
    return dataclasses.field(default=default, metadata=meta)


def field_types(config: type) -> dict[str, Any]:
    """Resolved type of each config field."""
    hints = typing.get_type_hints(config)
    return {f.name: hints[f.name] for f in dataclasses.fields(config)}


def _base(tp: Any) -> tuple[Any, bool, bool]:
    """``(item type, is a tuple, admits None)`` of a field type."""
    optional = False
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        optional = type(None) in args
        tp = next(a for a in args if a is not type(None))
    if typing.get_origin(tp) in (list, tuple, Sequence):
        args = typing.get_args(tp)
        return (args[0] if args else str), True, optional
    return tp, False, optional


def option_spec(config: type) -> dict[str, dict[str, Any]]:
    """Per option: ``type`` (``"int"``, ``"list[float]"`` …), ``default``, ``help``, bounds, choices."""
    spec = {}
    for f in dataclasses.fields(config):
        item, is_list, optional = _base(field_types(config)[f.name])
        name = getattr(item, "__name__", str(item))
        spec[f.name] = {
            "type": f"list[{name}]" if is_list else name,
            "optional": optional,
            "default": f.default,
            **{k: f.metadata.get(k) for k in ("help", "ge", "gt", "le", "lt", "choices")},
        }
    return spec


def _check_item(value: Any, meta: Mapping[str, Any], name: str) -> None:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"option {name} must be finite, got {value!r}")
        for key, ok, word in (
            ("ge", lambda v, b: v >= b, ">="),
            ("gt", lambda v, b: v > b, ">"),
            ("le", lambda v, b: v <= b, "<="),
            ("lt", lambda v, b: v < b, "<"),
        ):
            bound = meta.get(key)
            if bound is not None and not ok(value, bound):
                raise ValueError(f"option {name} must be {word} {bound:g}, got {value!r}")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ValueError(f"option {name} must be one of {', '.join(choices)}; got {value!r}")


def _validate_fields(cfg: Any) -> None:
    types_ = field_types(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        _, is_list, optional = _base(types_[f.name])
        if value is None:
            if not optional:
                raise ValueError(f"option {f.name} must be set")
            continue
        items = value if is_list else (value,)
        if is_list and not items and f.metadata.get("nonempty", True):
            raise ValueError(f"option {f.name} must not be empty")
        for item in items:
            _check_item(item, f.metadata, f.name)


def _coerce(value: Any, tp: Any, name: str) -> Any:
    """Convert ``value`` (possibly a CLI string such as ``"2,8,32"``) to type ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], name)
    if origin in (list, tuple, Sequence):
        item = args[0] if args else str
        if isinstance(value, str):
            value = [v for v in value.replace(" ", "").split(",") if v]
        if not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_coerce(v, item, name) for v in value)
    try:
        if tp is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            return bool(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"option {name} expects {getattr(tp, '__name__', tp)}, got {value!r}"
        ) from None
    return value


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict (keys may use - or _)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"config file {str(p)!r} does not exist")
    try:  # unreadable, not UTF-8, or not valid YAML/JSON: one error naming the file
        text = p.read_text()
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as err:
                raise ValueError(f"invalid YAML: {err}") from None
        else:
            data = json.loads(text)
    except (OSError, ValueError) as err:  # json.JSONDecodeError, UnicodeDecodeError too
        raise ValueError(f"cannot read config file {str(p)!r}: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(p)!r} must hold a mapping of options")
    return data


def make_config(config: type, *sources: Mapping[str, Any], owner: str = "config") -> Any:
    """Build ``config`` from ``sources`` (later ones win), coerced and validated.

    Args:
        config: a dataclass of :func:`option` fields.
        *sources: mappings of option name (``-`` or ``_``) to value or string.
        owner: named in the error for an unknown option.

    Raises:
        ValueError: an unknown option, a value of the wrong type, outside the declared
            range or choices, or rejected by the config's ``validate()``.
    """
    types_ = field_types(config)
    values: dict[str, Any] = {}
    for source in sources:
        for key, value in source.items():
            k = key.replace("-", "_")
            if k not in types_:
                raise ValueError(
                    f"unknown option {key!r} for {owner}; expected one of {', '.join(sorted(types_))}"
                )
            values[k] = _coerce(value, types_[k], k)
    cfg = config(**values)
    _validate_fields(cfg)
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        validate()
    return cfg

"""Reading recipes into config dataclasses, strictly; nothing here knows gro_fast's sections.

A field's type is its rule: ``Literal`` for choices, ``tuple[X, ...]`` for lists, and the
``Annotated`` ranges below (``PositiveInt``, ``NonNegativeFloat``, ``Fraction``, ...).
``apply_values`` sets a dataclass tree from a nested mapping (an unknown key is an error
naming its dotted path with the closest known key, or a moved key's new place);
``check_types`` checks every field against its type; ``parse_override`` reads
``key.sub=value``; ``read_recipe`` reads YAML (``1e-6`` as a number); ``field_docs`` reads
the field docstrings. ``gro_fast.train.config`` defines the sections.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Annotated, Any, Literal

import yaml

PositiveInt = Annotated[int, "> 0"]
NonNegativeInt = Annotated[int, ">= 0"]
PositiveFloat = Annotated[float, "> 0"]
NonNegativeFloat = Annotated[float, ">= 0"]
Fraction = Annotated[float, "in [0, 1]"]

_BOUNDS = {"> 0": lambda v: v > 0, ">= 0": lambda v: v >= 0, "in [0, 1]": lambda v: 0 <= v <= 1}


class ConfigError(ValueError):
    """A bad recipe or override; the message names the dotted key."""


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """``value`` checked (and int -> float widened) against the annotation ``hint``."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        base, bound = typing.get_args(hint)[:2]
        value = _coerce(key, value, base)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}: must be a finite number, got {value!r}")
        if not _BOUNDS[bound](value):
            raise ConfigError(f"{key}: must be {bound}, got {value!r}")
        return value
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(f"{key}: must be one of {choices}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        item = typing.get_args(hint)[0]
        return tuple(_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            if option is type(None) and value is None:
                return None
            try:
                return _coerce(key, value, option)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {hint}, got {value!r}")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if hint in (int, float, str, bool):
        if isinstance(value, bool) and hint is not bool:
            raise ConfigError(f"{key}: expected {hint.__name__}, got {value!r}")
        if not isinstance(value, hint):
            raise ConfigError(f"{key}: expected {hint.__name__}, got {type(value).__name__} "
                              f"{value!r}")
        return value
    return value


def _suggestion(key: str, prefix: str, names: list[str], moved: dict) -> str:
    """Where an unknown key lives now, or the closest known key, or the known keys."""
    if key in moved:
        return f"; it is now {moved[key]}"
    moved = {k[len(prefix):]: v for k, v in moved.items() if k.startswith(prefix)}
    close = difflib.get_close_matches(key[len(prefix):], names + list(moved), n=1)
    if close:
        return f"; did you mean {moved.get(close[0], prefix + close[0])}?"
    return f"; known keys: {', '.join(prefix + n for n in names)}"


def apply_values(obj, values: dict, prefix: str = "", moved: dict | None = None) -> None:
    """Sets the fields of dataclass ``obj`` from the nested dict ``values`` (strictly);
    ``moved`` maps keys of earlier recipes to their new places (named in the error)."""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {values!r}")
    hints = _hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in names:
            raise ConfigError(f"unknown config key {key!r}{_suggestion(key, prefix, names, moved or {})}")
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            apply_values(current, value or {}, f"{key}.", moved)
        else:
            setattr(obj, name, _coerce(key, value, hints[name]))


def check_types(obj, prefix: str = "") -> None:
    """Each field of dataclass ``obj`` (recursively) against its annotation."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            check_types(value, f"{prefix}{f.name}.")
        else:
            setattr(obj, f.name, _coerce(f"{prefix}{f.name}", value, hints[f.name]))


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optimizer.lr=1e-6"`` -> (["trainer", "lr"], 1e-6), the value parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {key}: cannot parse value {raw!r}: {exc}") from None
    if isinstance(value, str):
        value = _scientific(value)
    return key.split("."), value


def _scientific(value: str):
    """YAML 1.1 reads ``1e-6`` as a string; a number is what anyone means by it."""
    try:
        return float(value) if any(c in value for c in "eE") and value[0] in "+-.0123456789" \
            else value
    except ValueError:
        return value


def nested(parts: list[str], value: Any) -> dict:
    out: Any = value
    for part in reversed(parts):
        out = {part: out}
    return out


def fix_scientific(values: Any) -> Any:
    if isinstance(values, dict):
        return {k: fix_scientific(v) for k, v in values.items()}
    if isinstance(values, str):
        return _scientific(values)
    return values


def read_recipe(path: str) -> dict:
    """The YAML recipe at ``path`` as a mapping (numbers like ``1e-6`` read as numbers)."""
    try:
        with open(path) as f:
            values = yaml.safe_load(f) or {}
    except OSError as exc:
        raise ConfigError(f"config file {path!r}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path!r}: invalid YAML: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path!r}: expected a mapping, got {values!r}")
    return fix_scientific(values)


def field_docs(cls) -> dict[str, str]:
    """{field: docstring} of a config dataclass and its dataclass bases, read from their
    source (for ``--help``)."""
    import ast
    import inspect
    docs = {}
    for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):
        body = ast.parse(inspect.getsource(klass)).body[0].body
        for node, nxt in zip(body, body[1:]):
            if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and \
                    isinstance(getattr(nxt, "value", None), ast.Constant):
                docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs

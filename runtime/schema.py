"""Declared file formats: typed dataclass definitions → validating loaders and JSON Schema.

Every edgeclf file format (``split.json``, ``artifact.json``, ``parity.json``, ``bench.json``,
the checkpoint dict) is declared once as (frozen) dataclasses. This module turns such a
declaration into

* a validating loader — :func:`read_json` (unreadable, truncated or malformed JSON),
  :func:`check_header` (another schema, an older or newer ``schema_version``) and
  :func:`from_dict` (a missing field, a field of the wrong type), each raising one typed,
  one-line error that names the file and the field (e.g.
  ``artifact.json: field 'preprocess.crop_size': expected integer, got string '224'``);
* a JSON Schema (draft 2020-12) — :func:`json_schema`, for other tools.

Supported field types: ``str``, ``int``, ``float`` (an integer is accepted), ``bool``, ``None``,
``Any``, ``pathlib.Path`` (a string), ``Literal[...]``, ``X | Y``, ``list[X]``, ``tuple[X, ...]``,
fixed ``tuple[X, Y, Z]``, ``dict[str, X]`` and nested dataclasses. A field without a default is
required; keys the declaration does not know are ignored (files may gain optional keys within a
schema version) unless the dataclass sets ``__strict_keys__ = True``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import types
import typing
from pathlib import Path
from typing import Any

from .errors import EdgeclfError, FormatError

_JSON_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def _fail(error: type[FormatError], source: str, where: str, message: str) -> FormatError:
    field = where or None
    text = f"{source}: field {where!r}: {message}" if where else f"{source}: {message}"
    return error(text, source=source, field=field)


def read_json(path: str | os.PathLike, error: type[FormatError] = FormatError, what: str = "edgeclf file",
              hint: str = "") -> Any:
    """Read a JSON file.

    Args:
        path: the file.
        error: the :class:`FormatError` subclass to raise.
        what: what the file should be, for the message (``"artifact description"``).
        hint: appended to the message of a missing or unreadable file (e.g. how to create one).
    Raises:
        ``error``: missing/unreadable file, not UTF-8, empty, truncated or otherwise invalid JSON;
            the message names the file and, for bad JSON, the line and column.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise error(f"{path}: cannot read {what} ({err.strerror or err}){hint}", source=str(path)) from err
    return parse_json(raw, path, error, what)


def parse_json(raw: bytes, path: str | os.PathLike, error: type[FormatError] = FormatError,
               what: str = "edgeclf file") -> Any:
    """Parse the bytes of a JSON file read from ``path``; errors as :func:`read_json`."""
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise error(f"{path}: not a JSON {what} (not UTF-8 text)", source=str(path)) from err
    except json.JSONDecodeError as err:
        kind = "truncated" if _unterminated(err.doc) else "malformed"
        raise error(f"{path}: {kind} JSON, not a valid {what} ({err.msg} at line {err.lineno} column {err.colno})",
                    source=str(path)) from err


def _unterminated(text: str) -> bool:
    """Whether JSON text ends inside a string or with unclosed brackets (a file cut short)."""
    depth, in_string, escape = 0, False, False
    for ch in text:
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
    return in_string or depth > 0 or not text.strip()


def check_header(d: Any, source: str, schema: str, version: int, error: type[FormatError] = FormatError,
                 schema_key: str = "schema", fix: str = "") -> None:
    """Check ``d[schema_key] == schema`` and ``d["schema_version"] == version``.

    Raises:
        ``error``: not a JSON object, another schema, a missing/non-integer version, or a version
            older or newer than ``version`` (the message says which, and ``fix`` for an older one).
    """
    if not isinstance(d, dict):
        raise error(f"{source}: not an {schema} file (a JSON object expected, got {_type_name(d)})",
                    source=source)
    if d.get(schema_key) != schema:
        got = f"{schema_key} {d[schema_key]!r}" if schema_key in d else f"no {schema_key!r} field"
        raise error(f"{source}: not an {schema} file ({got}; expected {schema!r})",
                    source=source, field=schema_key)
    v = d.get("schema_version")
    if isinstance(v, bool) or not isinstance(v, int):
        raise _fail(error, source, "schema_version", f"expected integer, got {_describe(v)}"
                    if "schema_version" in d else "missing")
    if v > version:
        raise error(f"{source}: {schema} schema_version {v} is newer than this edgeclf reads ({version});"
                    " upgrade edgeclf", source=source, field="schema_version")
    if v < version:
        raise error(f"{source}: {schema} schema_version {v} is older than this edgeclf reads ({version})"
                    + (f"; {fix}" if fix else ""), source=source, field="schema_version")


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def _describe(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return _type_name(value)
    text = repr(value)
    return f"{_type_name(value)} {text if len(text) <= 40 else text[:39] + '…'}"


@functools.lru_cache(maxsize=None)
def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _expected(tp) -> str:
    origin = typing.get_origin(tp)
    if tp in _JSON_NAMES:
        return _JSON_NAMES[tp]
    if tp is Path:
        return "string (a path)"
    if tp is Any:
        return "any value"
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expected(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        return "array"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "object"
    return getattr(tp, "__name__", str(tp))


def _convert(tp, value: Any, where: str, source: str, error: type[FormatError], strict: bool = False) -> Any:
    origin = typing.get_origin(tp)
    bad = lambda: _fail(error, source, where, f"expected {_expected(tp)}, got {_describe(value)}")  # noqa: E731
    if tp is Any:
        return value
    if tp is type(None):
        if value is not None:
            raise bad()
        return None
    if tp is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad()
        return value
    if tp is Path:
        if not isinstance(value, str):
            raise bad()
        return Path(value)
    if origin is typing.Literal:
        if value not in typing.get_args(tp) or isinstance(value, bool) != any(isinstance(a, bool) for a in typing.get_args(tp)):
            raise bad()
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _convert(rest[0], value, where, source, error, strict)
        for a in rest:
            try:
                return _convert(a, value, where, source, error, strict)
            except FormatError:
                continue
        raise bad()
    if origin is list:
        if not isinstance(value, list):
            raise bad()
        (item,) = typing.get_args(tp) or (Any,)
        return [_convert(item, v, f"{where}[{i}]", source, error, strict) for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise bad()
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]", source, error, strict) for i, v in enumerate(value))
        if len(value) != len(args):
            raise _fail(error, source, where, f"expected an array of {len(args)} items, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]", source, error, strict) for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise bad()
        _, item = typing.get_args(tp) or (str, Any)
        return {str(k): _convert(item, v, f"{where}.{k}" if where else str(k), source, error, strict)
                for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad()
        return from_dict(tp, value, source=source, error=error, where=where, strict=strict)
    raise TypeError(f"unsupported field type {tp!r} at {where}")  # a declaration bug, not bad input


def from_dict(cls, data: Any, *, source: str, error: type[FormatError] = FormatError, where: str = "",
              strict: bool = False):
    """Build the dataclass ``cls`` from parsed JSON ``data``, checking every declared field.

    Args:
        cls: a dataclass whose field annotations use the supported types (module docstring).
        data: the parsed JSON object.
        source: the file name (or other source) for messages.
        error: the :class:`FormatError` subclass to raise.
        where: dotted prefix of ``data`` inside the whole document (for nested calls).
        strict: also refuse keys the declaration does not have (used before writing a file, so
            the declaration stays complete).
    Returns:
        An instance of ``cls`` (lists declared as tuples become tuples, paths ``Path``).
    Raises:
        ``error``: a missing required field, a field of the wrong type, or a value the dataclass
            itself refuses (its ``__post_init__`` raising ``ValueError``/``EdgeclfError``); the
            message names ``source`` and the dotted field.
    """
    if not isinstance(data, dict):
        raise _fail(error, source, where, f"expected object, got {_describe(data)}")
    hints = _hints(cls)
    kwargs = {}
    fields = _json_fields(cls)
    if strict or getattr(cls, "__strict_keys__", False):
        unknown = sorted(set(data) - {f.name for f in fields})
        if unknown:
            raise _fail(error, source, where, f"unknown keys {unknown}")
    for f in fields:
        key = f"{where}.{f.name}" if where else f.name
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise _fail(error, source, key, "missing")
            continue
        kwargs[f.name] = _convert(hints[f.name], data[f.name], key, source, error, strict)
    try:
        return cls(**kwargs)
    except FormatError:
        raise
    except (ValueError, TypeError, EdgeclfError) as err:  # the dataclass's own checks (__post_init__)
        raise _fail(error, source, where, str(err).splitlines()[0] if str(err) else type(err).__name__) from err


@functools.lru_cache(maxsize=None)
def _json_fields(cls) -> tuple:
    """The dataclass fields stored in the file (``field(metadata={"json": False})`` ones are not)."""
    return tuple(f for f in dataclasses.fields(cls) if f.init and f.metadata.get("json", True))


def to_dict(obj: Any) -> Any:
    """A dataclass instance (nested, with tuples and paths) → plain JSON-able values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in _json_fields(type(obj))}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


# -- JSON Schema -----------------------------------------------------------------------------------

def _schema_of(tp, defs: dict) -> dict:
    origin = typing.get_origin(tp)
    if tp is Any:
        return {}
    if tp in _JSON_NAMES:
        return {"type": _JSON_NAMES[tp]}
    if tp is Path:
        return {"type": "string"}
    if origin is typing.Literal:
        values = list(typing.get_args(tp))
        return {"const": values[0]} if len(values) == 1 else {"enum": values}
    if origin in (typing.Union, types.UnionType):
        parts = [_schema_of(a, defs) for a in typing.get_args(tp)]
        if all(set(p) == {"type"} and isinstance(p["type"], str) for p in parts):
            return {"type": [p["type"] for p in parts]}
        return {"anyOf": parts}
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return {"type": "array", "items": _schema_of(item, defs)}
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _schema_of(args[0], defs)}
        return {"type": "array", "prefixItems": [_schema_of(a, defs) for a in args],
                "minItems": len(args), "maxItems": len(args)}
    if origin is dict:
        _, item = typing.get_args(tp) or (str, Any)
        return {"type": "object", "additionalProperties": _schema_of(item, defs)}
    if dataclasses.is_dataclass(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # placeholder against recursion
            defs[name] = _object_schema(tp, defs)
        return {"$ref": f"#/$defs/{name}"}
    raise TypeError(f"unsupported field type {tp!r}")


def _object_schema(cls, defs: dict, consts: dict | None = None) -> dict:
    hints = _hints(cls)
    props, required = {}, []
    for f in _json_fields(cls):
        prop = {"const": consts[f.name]} if consts and f.name in consts else _schema_of(hints[f.name], defs)
        doc = f.metadata.get("doc") if f.metadata else None
        if doc:
            prop = {**prop, "description": doc}
        props[f.name] = prop
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
    out: dict = {"type": "object"}
    doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    if doc and not doc.startswith(cls.__name__ + "("):
        out["description"] = " ".join(doc.split())
    out.update(properties=props, required=required,
               additionalProperties=not getattr(cls, "__strict_keys__", False))
    return out


def json_schema(cls, *, schema_id: str, title: str, consts: dict | None = None) -> dict:
    """JSON Schema (draft 2020-12) of the top-level dataclass ``cls``.

    Args:
        cls: the format's top-level dataclass.
        schema_id: the schema's ``$id``.
        title: its ``title``.
        consts: top-level fields fixed to one value (``{"schema": "edgeclf.artifact",
            "schema_version": 1}``).
    Returns:
        A JSON-able dict; nested dataclasses are in ``$defs`` and referenced by name.
    """
    defs: dict = {}
    body = _object_schema(cls, defs, consts)
    out = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": schema_id, "title": title, **body}
    if defs:
        out["$defs"] = dict(sorted(defs.items()))
    return out


def schema_text(schema: dict) -> str:
    """The canonical text of a shipped schema file (2-space indent, trailing newline)."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"

"""Tools, tool calls and the action parser shared by every domain.

A domain writes its tools as plain functions ``fn(state, **arguments)`` decorated with :func:`tool`.
The decorator turns the signature and the Google-style docstring into an OpenAI function schema, and
:class:`Toolbox` validates every call against that schema before the function runs. Anything an agent
sends that is not a valid call becomes a :class:`ToolResult` with ``ok=False`` and a message that says
what was expected, what came and how to fix it: bad input is data, never an exception.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hiergym.errors import ToolError, did_you_mean

MAX_ACTION_CHARS = 32_000
"""Actions longer than this are refused before parsing (an LLM that loops should not cost RAM)."""
MAX_PYTHON_ACTION_CHARS = 256_000
"""Python actions (``ToolCall`` objects, OpenAI dicts) skip the text cap; their arguments, as JSON,
are capped here instead (a harness may send more than an LLM's text can hold, not without bound)."""
MAX_CALLS_PER_ACTION = 8
MAX_RESULT_CHARS = 8_000
MAX_JSON_DEPTH = 32
MAX_REPORTED_ERRORS = 5
"""Schema errors listed per argument; the rest of a long list of mistakes is left unsaid."""

ErrorKind = Literal[
    "parse_error",
    "oversized",
    "unknown_tool",
    "invalid_arguments",
    "tool_error",
    "tool_crash",
    "too_many_calls",
    "after_submit",
]


def frozen_slots(cls: type) -> type:
    """``cls``, a frozen dataclass with slots, refusing any assignment or deletion with
    FrozenInstanceError, as a frozen dataclass without slots does. Python 3.11's frozen
    ``__setattr__`` names the class as it was before ``slots=True`` rebuilt it, so for a name
    outside the fields it raised TypeError (``super(type, obj)``) instead."""
    names = frozenset(f.name for f in dataclasses.fields(cls))

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    cls.__setattr__ = __setattr__  # type: ignore[method-assign]
    cls.__delattr__ = __delattr__  # type: ignore[method-assign]
    return cls


class _JsonForms:
    """The slots a :class:`ToolCall` keeps its arguments' two JSON forms in, and ``_parsed``
    (set, to True, on a call the action parser made: its arguments are JSON values of JSON's
    own types). Not fields: they are no part of the call's value, its equality, repr, pickle
    or ``asdict``."""

    __slots__ = ("_canonical", "_json", "_parsed")


@frozen_slots
@dataclass(frozen=True, slots=True)
class ToolCall(_JsonForms):
    """One call an agent asked for: a tool name and its JSON arguments.

    A call is a value: its arguments are not to be changed once it is made. Their two JSON forms
    (:meth:`canonical_arguments`, and the plain one of :meth:`to_openai`) are computed once per
    call and kept on it, since a step needs them several times (cache key, message log, the
    repeat detector over the whole episode).
    """

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""

    def canonical_arguments(self) -> str:
        """Arguments as canonical JSON: the cache key and the repeat detector use it."""
        try:
            return self._canonical
        except AttributeError:
            text = canonical_json(self.arguments)
            _set_canonical(self, text)
            return text

    def arguments_json(self) -> str:
        """Arguments as plain JSON (``json.dumps``), as an OpenAI tool call carries them."""
        try:
            return self._json
        except AttributeError:
            text = _PLAIN(self.arguments)
            _set_json(self, text)
            return text

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments_json()},
        }

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "arguments": self.arguments})

    def with_id(self, call_id: str) -> ToolCall:
        """The same call under another id (its JSON forms carried over, not recomputed)."""
        return _made_call(
            self.name,
            self.arguments,
            call_id,
            getattr(self, "_json", None),
            getattr(self, "_canonical", None),
            getattr(self, "_parsed", False),
        )


_set_canonical = _JsonForms._canonical.__set__  # type: ignore[attr-defined]
_set_json = _JsonForms._json.__set__  # type: ignore[attr-defined]


@frozen_slots
@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a call returned: ``content`` is what the agent sees, ``data`` what verifiers read."""

    name: str
    ok: bool
    content: str
    data: Any = None
    error: ErrorKind | None = None
    call_id: str = ""


def _encoder(**options: Any) -> Callable[[Any], str]:
    """``lambda value: json.dumps(value, **options)``, the same text and the same exceptions, with
    json's C encoder made once instead of on every call (its set-up is most of the cost of
    encoding a tool call's few arguments). The C encoder runs without json's circular-reference
    markers (kept across calls, an exception could leave stale ones behind), so where it recurses
    too deeply json.dumps encodes the value again and raises what it raises (``Circular
    reference detected``, or RecursionError)."""
    import functools
    from json import encoder as stdlib

    plain = functools.partial(json.dumps, **options)
    maker = getattr(stdlib, "c_make_encoder", None)
    if maker is None:  # no C accelerator (another Python implementation)
        return plain
    model = json.JSONEncoder(**options)
    try:
        fast = maker(
            None,
            model.default,
            stdlib.encode_basestring_ascii if model.ensure_ascii else stdlib.encode_basestring,
            None,
            model.key_separator,
            model.item_separator,
            model.sort_keys,
            model.skipkeys,
            model.allow_nan,
        )
    except TypeError:  # another C signature
        return plain

    def encode(value: Any) -> str:
        try:
            return "".join(fast(value, 0))
        except RecursionError:
            return plain(value)

    probe = {
        "b": [1, 2.5, -0.0, float("inf"), None, True],
        "a": '\u00e9\n"',
        "c": {"z": 1, "y": ()},
    }
    try:
        same = encode(probe) == plain(probe) and encode("x") == plain("x")
    except Exception:
        same = False
    return encode if same else plain


_CANONICAL = _encoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
_PLAIN = _encoder()
"""``json.dumps(value)``, as an OpenAI tool call's ``arguments`` carry it."""


_new = object.__new__


def mutable_twin(cls: type) -> type:
    """A class with the slots of ``cls`` (a frozen dataclass with slots) and its bases, without
    its frozen ``__setattr__``: a fast constructor fills an instance of the twin with plain
    attribute stores, then makes it a ``cls`` (``obj.__class__ = cls``, allowed between
    classes of one layout), skipping the dataclass's ``__init__`` and its
    ``object.__setattr__`` per field. The instance is then exactly what ``cls(...)`` makes
    (the same slots set, nothing else: no ``__dict__``)."""
    return type(f"_Mutable{cls.__name__}", cls.__bases__, {"__slots__": cls.__slots__})


_MutableCall = mutable_twin(ToolCall)
_MutableResult = mutable_twin(ToolResult)


def _made_call(
    name: str,
    arguments: Mapping[str, Any],
    call_id: str,
    plain: str | None = None,
    canonical: str | None = None,
    parsed: bool = False,
) -> ToolCall:
    """``ToolCall(name, arguments, call_id)`` without the frozen dataclass's ``__init__`` (one
    ``object.__setattr__`` per field, a good part of a cached step's cost), with its arguments'
    JSON forms where known; ``parsed``: made by the action parser (``_parsed``)."""
    call = _new(_MutableCall)
    call.name = name
    call.arguments = arguments
    call.id = call_id
    if parsed:
        call._parsed = True
    if plain is not None:
        call._json = plain
    if canonical is not None:
        call._canonical = canonical
    call.__class__ = ToolCall
    return call


def _parsed_call(
    name: str, arguments: dict[str, Any], call_id: str, plain: str | None, canonical: str | None
) -> ToolCall:
    """A call the action parser made (``_parsed``), with its arguments' JSON forms where known."""
    return _made_call(name, arguments, call_id, plain, canonical, parsed=True)


def made_result(
    name: str, ok: bool, content: str, data: Any, error: ErrorKind | None, call_id: str
) -> ToolResult:
    """``ToolResult(name, ok, content, data, error, call_id)``, made as :func:`_made_call` is."""
    result = _new(_MutableResult)
    result.name = name
    result.ok = ok
    result.content = content
    result.data = data
    result.error = error
    result.call_id = call_id
    result.__class__ = ToolResult
    return result


def canonical_json(value: Any) -> str:
    """``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
    default=str)``: what the cache key, argument checks and repeat detectors compare."""
    return _CANONICAL(value)


# --------------------------------------------------------------------------------------------
# Decoding JSON: json's values, orjson's speed


_FAST_LOADS: list[Callable[[Any], Any] | None] = []  # [orjson.loads or None] once looked up
_HUGE = float(2**64)  # orjson reads integers in [-2**63, 2**64) exactly, others as floats
_HUGE_NEGATIVE = -float(2**63)
_LONG_DIGITS = re.compile(r"\d{19}")  # an integer literal outside that range has 19+ digits


def _fast_loads() -> Callable[[Any], Any] | None:
    """``orjson.loads`` (imported on first need: it is not part of ``import hiergym``'s cost),
    or ``None`` where orjson is not installed."""
    if not _FAST_LOADS:
        try:
            import orjson
        except ImportError:
            _FAST_LOADS.append(None)
        else:
            _FAST_LOADS.append(orjson.loads)
    return _FAST_LOADS[0]


def _holds_huge_float(value: Any, text: Any = None) -> bool:
    """Whether a parsed value holds a float outside (-2**63, 2**64): where orjson may have read
    an integer literal that json reads exactly (orjson has no integers past 64 bits). A ``text``
    with no run of 19 digits holds no such literal, so its value is not walked."""
    if type(text) is str and _LONG_DIGITS.search(text) is None:
        return False
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is float and not _HUGE_NEGATIVE < item < _HUGE:
            return True
    return False


def fast_json_loader(text: str) -> Callable[[str], Any]:
    """The function that parses ``text`` to exactly ``json.loads(text)``'s value, fastest:
    ``orjson.loads`` where orjson reads it so, else ``json.loads``. Decided once for a text that
    is parsed again and again (a remembered tool result)."""
    fast = _fast_loads()
    if fast is None:
        return json.loads
    try:
        value = fast(text)
    except ValueError:  # NaN, Infinity, 1e400, lone surrogates: json only
        return json.loads
    return json.loads if _holds_huge_float(value, text) else fast


def loads(text: str) -> Any:
    """``json.loads(text)``: the same value, or the same exception (json raises it), faster.

    orjson reads RFC 8259 JSON to the values json reads, refusing what json accepts beyond it
    (NaN, Infinity, numbers past the float range, lone surrogate escapes), which json then
    parses; the one silent difference, an integer past 64 bits read as a float, is caught by
    looking for floats that large, and json parses such a text again."""
    fast = _fast_loads()
    if fast is not None:
        try:
            value = fast(text)
        except ValueError:  # orjson.JSONDecodeError: json decides (and words the error)
            pass
        else:
            if not _holds_huge_float(value, text):
                return value
    return json.loads(text)


def error_result(kind: ErrorKind, message: str, name: str = "", call_id: str = "") -> ToolResult:
    return ToolResult(name=name, ok=False, content=f"error: {message}", error=kind, call_id=call_id)


# --------------------------------------------------------------------------------------------
# Schemas from signatures


def _inline_refs(schema: Any, defs: Mapping[str, Any]) -> Any:
    """``schema`` with every ``$ref`` to ``$defs`` replaced by its definition and pydantic's
    ``title`` keys dropped: one self-contained schema, as function-calling APIs expect."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            merged = {**defs[name], **{k: v for k, v in schema.items() if k != "$ref"}}
            return _inline_refs(merged, defs)
        return {
            k: _inline_refs(v, defs)
            for k, v in schema.items()
            if k not in ("title", "$defs") or (k == "title" and not isinstance(v, str))
        }
    if isinstance(schema, list):
        return [_inline_refs(v, defs) for v in schema]
    return schema


def _closed_objects(schema: Any) -> Any:
    """Typed objects (TypedDicts, dataclasses, models) accept no keys beyond their fields."""
    if isinstance(schema, dict):
        out = {k: _closed_objects(v) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out:
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [_closed_objects(v) for v in schema]
    return schema


def json_schema_of(annotation: Any) -> dict[str, Any]:
    """The standard JSON Schema of a parameter's type hint, made by pydantic: nested TypedDicts,
    dataclasses and models in full, ``X | None`` as ``anyOf`` with ``null``, ``Literal`` as
    ``enum``, ``Annotated[..., Field(ge=..., max_length=...)]`` as bounds."""
    from pydantic import TypeAdapter

    if annotation is Any:
        return {}
    try:
        raw = TypeAdapter(annotation).json_schema()
    except Exception as e:  # pydantic cannot describe it: a tool definition bug
        raise TypeError(f"unsupported tool parameter type: {annotation!r} ({e})") from e
    return _closed_objects(_inline_refs(raw, raw.get("$defs", {})))


def _docstring_sections(doc: str) -> tuple[str, dict[str, str]]:
    """Summary and per-argument descriptions of a Google-style docstring."""
    doc = inspect.cleandoc(doc or "")
    summary_lines: list[str] = []
    args: dict[str, str] = {}
    section = "summary"
    current = None
    for line in doc.splitlines():
        stripped = line.strip()
        if re.fullmatch(r"(Args|Arguments|Parameters):", stripped):
            section = "args"
            continue
        if re.fullmatch(r"[A-Z][A-Za-z ]*:", stripped):
            section = "other"
            continue
        if section == "summary":
            summary_lines.append(stripped)
        elif section == "args":
            m = re.match(r"(\w+)(?:\s*\([^)]*\))?:\s*(.*)", stripped)
            if m and line.startswith("    ") and not line.startswith("        "):
                current = m.group(1)
                args[current] = m.group(2)
            elif current and stripped:
                args[current] += " " + stripped
    summary = " ".join(s for s in summary_lines if s).strip()
    return summary, args


@dataclass(frozen=True)
class Tool:
    """A domain tool: the function, its schema, and how the env treats it."""

    name: str
    fn: Callable[..., Any]
    description: str
    parameters: dict[str, Any]
    terminal: bool = False
    """Calling it ends the episode (``submit``)."""
    cache: Literal["none", "memory", "persistent"] = "memory"
    """How results are reused: per process, in the sandbox's ToolCache table, or never (state)."""
    scope: Callable[[Any], str] | None = None
    """For a tool whose answer depends on the episode's task as well as on its arguments: a function
    of the episode state whose value joins the cache key (a fingerprint of the task, say)."""

    def schema(self) -> dict[str, Any]:
        """The OpenAI function schema."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    terminal: bool = False,
    cache: Literal["none", "memory", "persistent"] = "memory",
    scope: Callable[[Any], str] | None = None,
) -> Any:
    """Make a :class:`Tool` from ``fn(state, **arguments)``; its first parameter is the env state."""

    def build(f: Callable[..., Any]) -> Tool:
        hints = typing.get_type_hints(f)
        params = list(inspect.signature(f).parameters.values())[1:]
        summary, arg_docs = _docstring_sections(f.__doc__ or "")
        properties: dict[str, Any] = {}
        required: list[str] = []
        for p in params:
            schema = json_schema_of(hints[p.name])
            if p.name in arg_docs:
                schema = {**schema, "description": arg_docs[p.name]}
            properties[p.name] = schema
            if p.default is inspect.Parameter.empty:
                required.append(p.name)
        parameters = {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }
        return Tool(
            name=name or f.__name__,
            fn=f,
            description=summary,
            parameters=parameters,
            terminal=terminal,
            cache=cache,
            scope=scope,
        )

    return build(fn) if fn is not None else build


# --------------------------------------------------------------------------------------------
# Argument validation


_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}


def _type_ok(value: Any, schema: Mapping[str, Any]) -> bool:
    expected = schema.get("type")
    if expected is None:
        return True
    if isinstance(expected, str):
        check = _JSON_TYPES.get(expected)
        return check is None or check(value)
    return any(_JSON_TYPES.get(k, lambda v: True)(value) for k in expected)


def _describe(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    kind = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)
    if value is None:
        kind = "null"
    return f"{kind} {text[:60]}{'...' if len(text) > 60 else ''}"


def _expected(schema: Mapping[str, Any]) -> str:
    if "anyOf" in schema:
        return " or ".join(_expected(s) for s in schema["anyOf"])
    if "enum" in schema:
        return f"one of {schema['enum']}"
    kind = schema.get("type", "any value")
    return " or ".join(kind) if isinstance(kind, list) else str(kind)


_BOUNDS = (
    ("minimum", lambda v, b: v >= b, "at least"),
    ("maximum", lambda v, b: v <= b, "at most"),
    ("exclusiveMinimum", lambda v, b: v > b, "more than"),
    ("exclusiveMaximum", lambda v, b: v < b, "less than"),
)


def validate_value(value: Any, schema: Mapping[str, Any], path: str) -> list[str]:
    """JSON Schema errors for one value, each naming the argument path, what was expected and what
    came (type, anyOf, enum, const, bounds, lengths, items, properties, required and
    additionalProperties: what :func:`json_schema_of` produces)."""
    if "anyOf" in schema:
        branches = [validate_value(value, s, path) for s in schema["anyOf"]]
        if any(not b for b in branches):
            return []
        typed = [b for s, b in zip(schema["anyOf"], branches, strict=True) if _type_ok(value, s)]
        if len(typed) == 1:  # the value has one branch's type: that branch's errors say more
            return typed[0]
        return [f"{path} must be {_expected(schema)}, got {_describe(value)}"]
    if not _type_ok(value, schema):
        return [f"{path} must be {_expected(schema)}, got {_describe(value)}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path} must be one of {schema['enum']}, got {_describe(value)}"]
    if "const" in schema and value != schema["const"]:
        return [f"{path} must be {schema['const']!r}, got {_describe(value)}"]
    if _JSON_TYPES["number"](value):
        for key, ok, words in _BOUNDS:
            if key in schema and not ok(value, schema[key]):
                errors.append(f"{path} must be {words} {schema[key]}, got {_describe(value)}")
    if isinstance(value, str | list):
        what = "characters" if isinstance(value, str) else "items"
        low, high = (
            ("minLength", "maxLength") if isinstance(value, str) else ("minItems", "maxItems")
        )
        if low in schema and len(value) < schema[low]:
            errors.append(f"{path} needs at least {schema[low]} {what}, got {len(value)}")
        if high in schema and len(value) > schema[high]:
            errors.append(f"{path} takes at most {schema[high]} {what}, got {len(value)}")
    # Every item is checked (a bad one past any cap would reach the tool and the verifier); only
    # the number of reported errors is capped, to keep the message short.
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            errors += validate_value(item, schema["items"], f"{path}[{i}]")
            if len(errors) >= MAX_REPORTED_ERRORS:
                break
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{path}: missing required key {key!r}")
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if len(errors) >= MAX_REPORTED_ERRORS:
                break
            if k in props:
                errors += validate_value(v, props[k], f"{path}.{k}")
            elif extra is False:
                errors.append(f"{path}: unexpected key {k!r}{did_you_mean(str(k), props)}")
            elif isinstance(extra, Mapping):
                errors += validate_value(v, extra, f"{path}.{k}")
    return errors


# Values at the edges of their types. Checked once, here, for every call of every domain, before
# any schema check, tool, cache key or verifier sees them: they crash SQLite (surrogates, ints past
# 64 bits), float arithmetic (ints past the float range) and comparisons (NaN).
_SURROGATE_RANGE = "\ud800-\udfff"
_CONTROL_RANGE = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f"  # C0 controls but tab, newline, CR; DEL
_SURROGATE = re.compile(f"[{_SURROGATE_RANGE}]")
_CONTROL_CHARS = re.compile(f"[{_CONTROL_RANGE}]")
INT_LIMIT = 2**63 - 1
"""Integers must fit in a signed 64-bit integer (SQLite's INTEGER; well inside the float range)."""


_BAD_CHARS = re.compile(f"[{_SURROGATE_RANGE}{_CONTROL_RANGE}]")


def _edge_problem(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        if _BAD_CHARS.search(value) is None:  # the common case: one scan, nothing to report
            return None
        m = _SURROGATE.search(value)
        if m:
            return (
                f"{path} contains a lone surrogate ({m.group().encode('unicode_escape').decode()} "
                f"at position {m.start()}), which is not valid Unicode text; send UTF-8 text"
            )
        m = _CONTROL_CHARS.search(value)
        if m:
            return (
                f"{path} contains the control character {m.group().encode('unicode_escape').decode()} "
                f"at position {m.start()}; only tab, newline and carriage return are accepted"
            )
    elif isinstance(value, bool):
        return None
    elif isinstance(value, int):
        if not -INT_LIMIT - 1 <= value <= INT_LIMIT:
            return (
                f"{path} is an integer of {len(str(abs(value)))} digits; integers must fit in "
                f"64-bit range (|n| < 2**63)"
            )
    elif isinstance(value, float) and not math.isfinite(value):
        return f"{path} must be a finite number, got {value}"
    return None


def edge_value_errors(arguments: Mapping[str, Any], path: str = "") -> list[str]:
    """Every value (and key) in ``arguments``, however deeply nested, that is a lone surrogate, holds
    a control character, is a non-finite number or an integer beyond 64 bits."""
    errors: list[str] = []
    stack: list[tuple[Any, str]] = [(arguments, path)]
    while stack and len(errors) < MAX_REPORTED_ERRORS:
        value, where = stack.pop()
        if isinstance(value, Mapping):
            for k, v in value.items():
                sub = f"{where}.{k}" if where else str(k)
                problem = _edge_problem(k, f"a key in {where or 'the arguments'}")
                if problem:
                    errors.append(problem)
                    continue
                stack.append((v, sub))
        elif isinstance(value, list | tuple):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(value))
        else:
            problem = _edge_problem(value, where or "a value")
            if problem:
                errors.append(problem)
    return errors


def validate_arguments(tool_: Tool, arguments: Mapping[str, Any]) -> list[str]:
    edge = edge_value_errors(arguments)
    if edge:
        return edge
    props = tool_.parameters["properties"]
    errors = [
        f"missing required argument {r!r}"
        for r in tool_.parameters["required"]
        if r not in arguments
    ]
    for key, value in arguments.items():
        if key not in props:
            errors.append(f"unexpected argument {key!r}{did_you_mean(key, props)}")
            continue
        errors += validate_value(value, props[key], key)
    return errors


# --------------------------------------------------------------------------------------------
# Parsing agent actions

_TOOL_CALL_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class ActionParseError(ToolError):
    """The action was not a tool call in any accepted format."""


def _depth(value: Any, limit: int) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, d + 1) for v in item)
    return deepest


_TOO_MANY_DIGITS = (
    "a number in the action has more digits than Python converts (4,300); "
    "integers must fit in 64-bit range"
)


def _loads(text: str) -> Any:
    try:
        value = loads(text)
    except RecursionError as e:
        raise ActionParseError("the JSON is nested too deeply to parse") from e
    except json.JSONDecodeError as e:
        raise ActionParseError(
            f"the action is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); "
            'send {"name": "<tool>", "arguments": {...}}'
        ) from e
    except ValueError as e:  # an integer literal past sys.get_int_max_str_digits()
        raise ActionParseError(_TOO_MANY_DIGITS) from e
    _check_depth(value, text)
    return value


def _check_depth(value: Any, text: str) -> None:
    # Nesting needs brackets: text with fewer brackets than the limit cannot exceed it.
    brackets = text.count("{") + text.count("[")
    if brackets > MAX_JSON_DEPTH and _depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ActionParseError(f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels")


def _is_mapping(value: Any) -> bool:
    """``isinstance(value, Mapping)``, with parsed JSON's dicts answered without the ABC check."""
    return type(value) is dict or isinstance(value, Mapping)


def _call_from_dict(obj: Mapping[str, Any], index: int, parsed: bool = False) -> ToolCall:
    """The call an object describes; ``parsed``: the object was read from JSON text (its
    arguments are JSON values), so the call is marked so and carries its JSON forms."""
    call_id = obj.get("id") if isinstance(obj.get("id"), str) else ""
    if "function" in obj and _is_mapping(obj["function"]):  # an OpenAI tool_calls entry
        obj = obj["function"]
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise ActionParseError(
            f"a tool call needs a string 'name'; got keys {sorted(map(str, obj))[:8]}. "
            'Send {"name": "<tool>", "arguments": {...}}'
        )
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):  # OpenAI sends arguments as a JSON string
        args = _loads(args) if args.strip() else {}
    if args is None:
        args = {}
    if not _is_mapping(args):
        raise ActionParseError(
            f"'arguments' of {name!r} must be a JSON object, got {_describe(args)}"
        )
    if parsed:
        plain, canonical = _flat_forms(args) or (None, None)
        return _parsed_call(name, dict(args), call_id or f"call_{index}", plain, canonical)
    return _made_call(name, dict(args), call_id or f"call_{index}")


def _calls_from_value(value: Any, parsed: bool = False) -> list[ToolCall]:
    if isinstance(value, ToolCall):
        return [value]
    if _is_mapping(value):
        if "tool_calls" in value:  # an OpenAI assistant message
            entries = value["tool_calls"]
            if not isinstance(entries, list) or not entries:
                raise ActionParseError("'tool_calls' must be a non-empty list of calls")
            return [
                _call_from_dict(e, i, parsed) if _is_mapping(e) else _bad_entry(e)
                for i, e in enumerate(entries)
            ]
        return [_call_from_dict(value, 0, parsed)]
    if isinstance(value, list):
        if not value:
            raise ActionParseError("an empty list holds no tool call")
        calls: list[ToolCall] = []
        for i, entry in enumerate(value):
            if isinstance(entry, ToolCall):
                calls.append(entry)
            elif _is_mapping(entry):
                calls.append(_call_from_dict(entry, i, parsed))
            else:
                _bad_entry(entry)
        return calls
    raise ActionParseError(
        f"expected a tool call object, got {_describe(value)}; "
        'send {"name": "<tool>", "arguments": {...}}'
    )


def _bad_entry(entry: Any) -> list[ToolCall]:
    raise ActionParseError(f"each tool call must be a JSON object, got {_describe(entry)}")


def _first_json_call(text: str) -> tuple[Any, int, int] | None:
    """The first decodable JSON call object embedded in prose, if any (LLMs wrap calls in
    chatter), with where it lies in ``text`` (start, end)."""
    decoder = json.JSONDecoder()
    for attempt, m in enumerate(re.finditer(r"\{", text)):
        if attempt >= 16:
            break
        try:
            value, end = decoder.raw_decode(text, m.start())
        except (json.JSONDecodeError, RecursionError):
            continue
        except ValueError as e:  # a decodable object holding an integer too long to convert
            raise ActionParseError(_TOO_MANY_DIGITS) from e
        if isinstance(value, dict) and (
            "name" in value or "function" in value or "tool_calls" in value
        ):
            _check_depth(value, text[m.start() : end])
            return value, m.start(), end
    return None


def action_repr(action: Any) -> str:
    """``repr(action)``: what a turn records of an action that is not text. A :class:`ToolCall`
    of flat arguments (str keys, JSON scalars) is written as its dataclass ``__repr__`` writes it,
    without that method's guard against a call inside its own arguments (which such arguments
    cannot hold)."""
    if type(action) is ToolCall:
        name, arguments, call_id = action.name, action.arguments, action.id
        if type(name) is str and type(call_id) is str and _flat_json(arguments):
            return f"ToolCall(name={name!r}, arguments={arguments!r}, id={call_id!r})"
    return repr(action)


def prose_of(text: str) -> str:
    """``text`` without what :func:`parse_action` read its calls from (the ``<tool_call>`` blocks,
    the fenced or whole JSON, or the embedded JSON call): the assistant's content that the
    message log keeps beside the parsed ``tool_calls``, so a chat template that renders both
    never shows a call twice (a context no model generated, and SFT on the log would teach).
    Found by the parse itself (remembered with its calls); text without a call is kept whole."""
    known = _PARSED.get(text)
    if known is not None:
        return known[1]
    try:
        return _parse_text(text)[1]
    except ActionParseError:
        return text.strip()


def parse_action(action: Any, turn: int | None = None) -> list[ToolCall]:
    """Tool calls in an agent action.

    Accepts a :class:`ToolCall`, a JSON object ``{"name", "arguments"}``, Hermes/Qwen
    ``<tool_call>{...}</tool_call>`` blocks (several per message), an OpenAI assistant message or
    ``tool_calls`` entries, a list of any of those, or text that embeds one JSON call.

    An action text parsed before (the same call sent again, in this episode or another env's)
    is answered from :data:`_PARSED`: the same calls, with arguments of their own.

    ``turn``: the index of the turn the calls are for; a Python call without an id is then
    named ``call_{turn}_{i}`` (``i`` its place in the action), as :class:`ToolEnv` names them.

    Raises:
        ActionParseError: with a message fit to show the agent.
    """
    if isinstance(action, bytes):
        action = action.decode("utf-8", errors="replace")
    if not isinstance(action, str):
        values = _calls_from_value(action)
        if turn is None:
            calls = [_as_json_call(c, c.id) for c in values]
        else:
            calls = [_as_json_call(c, c.id or f"call_{turn}_{i}") for i, c in enumerate(values)]
    else:
        known = _PARSED.get(action)
        if known is not None:
            parsed = known[0]
            if len(parsed) == 1:  # the common action: one call
                return [_recalled(parsed[0])]
            return [_recalled(k) for k in parsed]
        calls, prose = _parse_text(action)
        if len(action) <= PARSED_TEXT_CHARS:
            if len(_PARSED) >= PARSED_ENTRIES:
                _PARSED.clear()
            _PARSED[action] = (tuple(_remembered(c) for c in calls), prose)
    return _capped(calls)


def _capped(calls: list[ToolCall]) -> list[ToolCall]:
    if len(calls) > MAX_CALLS_PER_ACTION:
        raise ActionParseError(
            f"{len(calls)} tool calls in one action; at most {MAX_CALLS_PER_ACTION} are run per turn"
        )
    return calls


def _parse_text(action: str) -> tuple[list[ToolCall], str]:
    """The calls in an action text (at most :data:`MAX_CALLS_PER_ACTION`, checked before the text
    is remembered) and the text without what they were read from (:func:`prose_of`)."""
    if len(action) > MAX_ACTION_CHARS:
        raise ActionParseError(
            f"the action is {len(action):,} characters; the cap is {MAX_ACTION_CHARS:,}. "
            "Send one short tool call per turn"
        )
    text = action.strip()
    if not text:
        raise ActionParseError('the action is empty; send {"name": "<tool>", "arguments": {...}}')
    if "<tool_call>" in text:
        blocks = [b.strip() for b in _TOOL_CALL_BLOCK.findall(text)]
        calls = [
            c for i, b in enumerate(blocks) for c in _index(_calls_from_value(_loads(b), True), i)
        ]
        return _capped(calls), _TOOL_CALL_BLOCK.sub("", text).strip()
    fence = _FENCE.search(text) if "```" in text else None
    prose = "" if fence is None else (text[: fence.start()] + text[fence.end() :]).strip()
    if fence is not None:
        text = fence.group(1).strip()
    decoded = False
    try:
        value = _loads(text)
        decoded = True
        calls = _calls_from_value(value, True)
    except ActionParseError:
        found = _first_json_call(text)
        if found is None:
            raise
        value, start, end = found
        if fence is None and not decoded:  # a call inside prose: the prose is kept
            prose = (text[:start] + text[end:]).strip()
        calls = _calls_from_value(value, True)
    return _capped(calls), prose


PARSED_ENTRIES = 4096
"""Action texts whose calls are remembered (then the memo starts afresh)."""
PARSED_TEXT_CHARS = 2000
"""Only texts this short are remembered (at most ~8 MB of text in all)."""


_Parsed = tuple[str, str, dict[str, Any], bool, str, str]
"""A call parsed from an action text, kept to answer the same text again: name, id, arguments
(copied into each call made from it, so no two calls share a mutable value), whether they are
flat (every value a JSON scalar: a shallow copy is a full one), and their two JSON forms, which
a repeated call needs again (cache key and check, message log)."""


def _remembered(call: ToolCall) -> _Parsed:
    arguments = dict(call.arguments)
    flat = _flat_json(arguments)
    return (call.name, call.id, arguments, flat, call.canonical_arguments(), call.arguments_json())


def _recalled(parsed: _Parsed) -> ToolCall:
    name, call_id, arguments, flat, canonical, plain = parsed
    return _parsed_call(name, dict(arguments) if flat else loads(plain), call_id, plain, canonical)


_PARSED: dict[str, tuple[tuple[_Parsed, ...], str]] = {}
"""Action text -> its calls (:data:`_Parsed`) and its prose (:func:`prose_of`)."""


def _as_json_call(call: ToolCall, call_id: str) -> ToolCall:
    """The call, named ``call_id``, with its arguments as JSON would carry them. A Python action
    can hold what JSON cannot (int keys, tuples, objects); past here, validation, cache keys and
    verifiers may assume JSON values. Keys become strings; anything unserialisable is a parse
    error."""
    forms = _flat_forms(call.arguments)
    if forms is not None:  # its JSON round trip is a shallow copy; both JSON forms at once
        plain, canonical = forms
        if len(plain) <= MAX_PYTHON_ACTION_CHARS:
            return _parsed_call(call.name, dict(call.arguments), call_id, plain, canonical)
    try:
        text = _PLAIN(call.arguments)
        if len(text) > MAX_PYTHON_ACTION_CHARS:
            raise ActionParseError(
                f"the arguments of {call.name[:80]!r} are {len(text):,} characters as JSON; the cap "
                f"is {MAX_PYTHON_ACTION_CHARS:,}. Send one short tool call per turn"
            )
        arguments = dict(call.arguments) if _flat_json(call.arguments) else loads(text)
    except ActionParseError:
        raise
    except (TypeError, ValueError, RecursionError) as e:
        raise ActionParseError(
            f"the arguments of {call.name[:80]!r} are not JSON ({type(e).__name__}: {str(e)[:80]})"
        ) from e
    return _parsed_call(call.name, arguments, call_id, text, None)  # json.dumps(arguments): text


_EXACT_SCALARS = frozenset({str, int, float, bool, type(None)})
_encode_string = json.encoder.encode_basestring_ascii  # json's own (C) string encoder
_INFINITY = float("inf")
_INT_TEXT = int.__repr__  # what json writes for an int (and float.__repr__ for a float)
_FLOAT_TEXT = float.__repr__


def _flat_forms(arguments: Any) -> tuple[str, str] | None:
    """``(json.dumps(arguments), canonical_json(arguments))`` for a dict of str keys to JSON
    scalars of exactly JSON's types (finite floats, integers of up to 18 digits), written as
    json writes them (its string encoder, ``int.__repr__``, ``float.__repr__``) with no
    encoder set up per call; ``None`` for any other value (json itself then writes it)."""
    if type(arguments) is not dict:
        return None
    encode = _encode_string
    keys: list[str] = []
    values: list[str] = []
    for key, value in arguments.items():
        if type(key) is not str:
            return None
        kind = type(value)
        if kind is str:
            text = encode(value)
        elif kind is int:
            if not -(10**18) < value < 10**18:  # a long one: json decides (and words errors)
                return None
            text = _INT_TEXT(value)
        elif kind is bool:
            text = "true" if value else "false"
        elif value is None:
            text = "null"
        elif kind is float and -_INFINITY < value < _INFINITY:
            text = _FLOAT_TEXT(value)
        else:
            return None
        keys.append(encode(key))
        values.append(text)
    if len(keys) == 1:
        return f"{{{keys[0]}: {values[0]}}}", f"{{{keys[0]}:{values[0]}}}"
    plain = ", ".join([f"{k}: {v}" for k, v in zip(keys, values, strict=True)])
    order = sorted(range(len(keys)), key=list(arguments).__getitem__)
    canonical = ",".join([f"{keys[i]}:{values[i]}" for i in order])
    return f"{{{plain}}}", f"{{{canonical}}}"


def _flat_json(arguments: Any) -> bool:
    """Whether ``arguments`` is a dict of str keys to JSON scalars of exactly JSON's types, which
    its JSON round trip would give back equal: a shallow copy is then that round trip."""
    if type(arguments) is not dict:
        return False
    scalars = _EXACT_SCALARS
    for key, value in arguments.items():
        if type(key) is not str or type(value) not in scalars:
            return False
    return True


def _index(calls: list[ToolCall], block: int) -> list[ToolCall]:
    return [c if c.id != "call_0" else c.with_id(f"call_{block}") for c in calls]


# --------------------------------------------------------------------------------------------
# A domain's tools


CHECKED_ENTRIES = 4096
"""Argument checks a Toolbox remembers (by tool and canonical arguments) before starting afresh."""

_JSON_SCALARS = (str, int, float, bool, type(None))


def _is_json_value(value: Any) -> bool:
    """Whether ``value`` is made of JSON types only (dict with str keys, list, scalars), the values
    whose canonical JSON names them exactly (a tuple, say, would share a list's text)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for k, v in item.items():
                if not isinstance(k, str):
                    return False
                stack.append(v)
        elif isinstance(item, list):
            stack.extend(item)
        elif not isinstance(item, _JSON_SCALARS):
            return False
    return True


class Toolbox:
    """The tools of one domain, with validation and error observations around each call."""

    def __init__(self, tools: Iterable[Tool]):
        self.tools: dict[str, Tool] = {}
        for t in tools:
            if t.name in self.tools:
                raise ValueError(f"two tools are named {t.name!r}")
            self.tools[t.name] = t
        self._schemas = [t.schema() for t in self.tools.values()]
        # (tool, canonical arguments) -> the problems found: a check is a pure function of the
        # schema and of JSON arguments, and an agent repeats calls.
        self._checked: dict[tuple[str, str], list[str]] = {}

    def schemas(self) -> list[dict[str, Any]]:
        return self._schemas

    def __contains__(self, name: object) -> bool:
        return name in self.tools

    def __getitem__(self, name: str) -> Tool:
        return self.tools[name]

    def check(self, call: ToolCall) -> ToolResult | None:
        """The error observation for a call that must not run, or ``None`` if it may run."""
        t = self.tools.get(call.name)
        if t is None:
            return error_result(
                "unknown_tool",
                f"unknown tool {call.name[:80]!r}{did_you_mean(call.name, self.tools)} "
                f"(tools: {', '.join(self.tools)})",
                call.name[:80],
                call.id,
            )
        problems = self._problems(t, call)
        if problems:
            shown = "; ".join(problems[:5]) + (
                f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
            )
            return error_result("invalid_arguments", f"{call.name}: {shown}", call.name, call.id)
        return None

    def _problems(self, t: Tool, call: ToolCall) -> list[str]:
        arguments = call.arguments
        try:
            parsed = call._parsed  # made by the parser: JSON values of JSON's types
        except AttributeError:
            parsed = False
        if not parsed and (not isinstance(arguments, dict) or not _is_json_value(arguments)):
            return validate_arguments(t, arguments)
        try:
            key = (t.name, call.canonical_arguments())
        except (ValueError, TypeError, RecursionError):  # no JSON text: check it as it is
            return validate_arguments(t, arguments)
        problems = self._checked.get(key)
        if problems is None:
            problems = validate_arguments(t, arguments)
            if len(self._checked) >= CHECKED_ENTRIES:
                self._checked.clear()
            self._checked[key] = problems
        return problems

    def run(self, call: ToolCall, state: Any) -> ToolResult:
        """Run a checked call; a ToolError becomes an error observation."""
        t = self.tools[call.name]
        try:
            data = t.fn(state, **call.arguments)
        except ToolError as e:
            return error_result("tool_error", f"{call.name}: {e}", call.name, call.id)
        return render_result(call, data)


def render_result(call: ToolCall, data: Any) -> ToolResult:
    content = (
        data if isinstance(data, str) else json.dumps(data, separators=(", ", ": "), default=str)
    )
    return render_text(call, data, content)


def render_text(call: ToolCall, data: Any, content: str) -> ToolResult:
    """The result of ``call`` given its ``content`` already rendered (what :func:`render_result`
    shows for ``data``), capped at MAX_RESULT_CHARS."""
    if len(content) > MAX_RESULT_CHARS:
        content = (
            content[:MAX_RESULT_CHARS]
            + f"... [truncated at {MAX_RESULT_CHARS} characters; page further]"
        )
    return made_result(call.name, True, content, data, None, call.id)

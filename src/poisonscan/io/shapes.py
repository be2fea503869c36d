"""Record shapes: detect a file's shape from its fields, and turn raw records into units.

A *unit* is what detectors see: a document (``Shape.TEXT``) or one prompt/response pair. Flat shapes
whose fields are plain strings are converted with Arrow compute, without per-record Python; chats,
message lists and any block holding a bad record go through the per-record Python path, which is
the reference for the exact error of each record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from poisonscan.errors import InputError
from poisonscan.io.options import ReadOptions
from poisonscan.io.raw import BadRecords, RawBlock
from poisonscan.io.records import RecordBatch, Shape

SEP = "\n\n"
_SEP_SCALAR = pa.scalar(SEP, pa.large_string())
SYSTEM_ROLES = frozenset({"system", "developer"})
ASSISTANT_ROLES = frozenset(
    {"assistant", "gpt", "model", "bot", "chatgpt", "bard", "bing", "claude"})

# Required and optional string fields of each flat shape (TEXT's field is chosen per file).
_FLAT_FIELDS: dict[Shape, tuple[tuple[str, ...], tuple[str, ...]]] = {
    Shape.ALPACA: (("instruction", "output"), ("input",)),
    Shape.PROMPT_RESPONSE: (("prompt", "response"), ()),
    Shape.PROMPT_COMPLETION: (("prompt", "completion"), ()),
    Shape.PREFERENCE: (("chosen", "rejected"), ("prompt",)),
}
_NESTED_FIELDS = {Shape.CHAT: "messages", Shape.SHAREGPT: "conversations"}


class BadRecord(Exception):
    """One record cannot be used: ``reason`` is the machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def detect_shape(names: list[str], options: ReadOptions) -> tuple[Shape, str | None] | None:
    """The record shape (and, for text, the text field) of records with fields ``names``.

    Returns None when no known shape matches. ``options.shape`` and ``options.text_field`` win.
    """
    present = set(names)
    text_field = options.text_field or ("text" if "text" in present or "content" not in present
                                        else "content")
    if options.shape is not None:
        return options.shape, text_field if options.shape is Shape.TEXT else None
    if options.text_field is not None and options.text_field in present:
        return Shape.TEXT, options.text_field
    if "messages" in present:
        return Shape.CHAT, None
    if "conversations" in present:
        return Shape.SHAREGPT, None
    if {"chosen", "rejected"} <= present:
        return Shape.PREFERENCE, None
    if {"instruction", "output"} <= present:
        return Shape.ALPACA, None
    if {"prompt", "response"} <= present:
        return Shape.PROMPT_RESPONSE, None
    if {"prompt", "completion"} <= present:
        return Shape.PROMPT_COMPLETION, None
    if options.text_field is None and ("text" in present or "content" in present):
        return Shape.TEXT, text_field
    return None


def describe_fields(names: list[str], limit: int = 12) -> str:
    """``"a, b, c"`` (shortened) or ``"none"``, for error messages."""
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def undetected_message(names: list[str], options: ReadOptions) -> str:
    """Why no shape matched records with fields ``names``, and how to fix it."""
    found = f"fields found: {describe_fields(names)}"
    if options.text_field is not None:
        return f"no {options.text_field!r} field (the text field asked for); {found}"
    return (f"no known text or prompt/response fields; {found}; name the text field with "
            "--text-field or the record shape with --shape")


@dataclass(frozen=True)
class ShapeConverter:
    """Converts the raw blocks of one file, of one shape, into :class:`RecordBatch` objects.

    Attributes:
        path: the file, for batches and messages.
        shape: the record shape.
        required: string fields every record must have (for chats, the message list field).
        optional: string fields that default to an empty string.
        id_field: the id field, or None when records carry no id.
        flat: True when every field is a plain string, so the Arrow fast path applies.
        max_record_bytes: the record size limit, checked for blocks whose reader has not.
    """

    path: str
    shape: Shape
    required: tuple[str, ...]
    optional: tuple[str, ...]
    id_field: str | None
    flat: bool
    max_record_bytes: int

    @classmethod
    def for_block(cls, path: str, raw: RawBlock, options: ReadOptions) -> ShapeConverter | None:
        """Detect the shape from the first block of a file; None when no shape matches."""
        names = raw.field_names()
        detected = detect_shape(names, options)
        if detected is None:
            return None
        shape, text_field = detected
        required: tuple[str, ...]
        optional: tuple[str, ...]
        if shape is Shape.TEXT:
            required, optional = (text_field or "text",), ()
        elif shape in _NESTED_FIELDS:
            required, optional = (_NESTED_FIELDS[shape],), ()
        else:
            required, optional = _FLAT_FIELDS[shape]
        id_field: str | None = options.id_field or "id"
        if id_field not in names:
            if options.id_field is not None:
                raise InputError(path, f"no id field {id_field!r}; fields found: "
                                 f"{describe_fields(names)}", reason="missing_field",
                                 location=raw.location(0) if len(raw) else None)
            id_field = None
        flat = shape not in _NESTED_FIELDS and _not_nested(raw, required + optional)
        return cls(path, shape, required, optional, id_field, flat, options.max_record_bytes)

    @property
    def fields(self) -> tuple[str, ...]:
        """Every field the converter reads (for column selection)."""
        return self.required + self.optional + ((self.id_field,) if self.id_field else ())

    def arrow_schema(self, id_type: pa.DataType | None) -> pa.Schema | None:
        """An explicit schema for JSON parsing of later blocks, or None to let Arrow infer types."""
        if not self.flat or (self.id_field is not None and id_type is None):
            return None
        cols = [(f, pa.large_string()) for f in self.required + self.optional]
        if self.id_field is not None:
            cols.append((self.id_field, id_type))
        return pa.schema(cols)

    def convert(self, raw: RawBlock, bad: BadRecords) -> RecordBatch:
        """The units of ``raw``; bad records go to ``bad`` (which raises unless skipping)."""
        batch = None
        if self.flat and raw.table is not None and len(raw):
            batch = self._convert_arrow(raw)
        if batch is None:
            batch = self._convert_python(raw.python(), bad)
        return batch

    # Arrow fast path -------------------------------------------------------------------------

    def _convert_arrow(self, raw: RawBlock) -> RecordBatch | None:
        """Vectorised conversion; None when any record needs the per-record path."""
        table = raw.table
        assert table is not None
        cols: dict[str, pa.Array] = {}
        for name in self.required + self.optional:
            if name not in table.column_names:
                if name in self.required:
                    return None
                cols[name] = pa.array([""] * table.num_rows, pa.large_string())
                continue
            arr = _as_large_string(table.column(name), validate=not raw.utf8_checked)
            if arr is None or (arr.null_count and name in self.required):
                return None
            cols[name] = arr.fill_null("") if arr.null_count else arr
        if raw.check_size and cols:
            size = pc.binary_length(cols[self.required[0]])
            for name in list(cols)[1:]:
                size = pc.add(size, pc.binary_length(cols[name]))
            if pc.max(size).as_py() > self.max_record_bytes:
                return None
        ids = self._ids_arrow(table)
        if ids is None:
            return None
        n = table.num_rows
        if self.shape is Shape.TEXT:
            return RecordBatch(self.path, self.shape, raw.rows, ids, text=cols[self.required[0]],
                               line=raw.lines)
        rejected = None
        if self.shape is Shape.ALPACA:
            instruction, inp = cols["instruction"], cols["input"]
            joined = pc.binary_join_element_wise(instruction, inp, _SEP_SCALAR)
            prompt = pc.if_else(pc.equal(pc.binary_length(inp), 0), instruction, joined)
            response = cols["output"]
        elif self.shape is Shape.PREFERENCE:
            prompt, response, rejected = cols["prompt"], cols["chosen"], cols["rejected"]
        else:
            prompt, response = cols["prompt"], cols[self.required[1]]
        return RecordBatch(self.path, self.shape, raw.rows, ids, prompt=prompt, response=response,
                           rejected=rejected, turn=np.zeros(n, np.int32), line=raw.lines)

    def _ids_arrow(self, table: pa.Table) -> pa.Array | None:
        if self.id_field is None or self.id_field not in table.column_names:
            return pa.nulls(table.num_rows, pa.string())
        col = table.column(self.id_field)
        col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        if rounded_ids(col):
            return None  # the per-record parse keeps such numbers exact
        try:
            return col.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None

    # Per-record path -------------------------------------------------------------------------

    def _convert_python(self, raw: RawBlock, bad: BadRecords) -> RecordBatch:
        assert raw.records is not None
        unit_fn = self._unit_function()
        keep_rows: list[int] = []
        keep_lines: list[int] = []
        ids: list[Any] = []
        sides: list[list[str]] = [[], [], []]  # text or prompt, response, rejected
        turns: list[int] = []
        for i, rec in enumerate(raw.records):
            try:
                if not isinstance(rec, dict):
                    raise BadRecord("wrong_type",
                                    f"record is {json_kind(rec)}, expected an object")
                units = unit_fn(rec)
                if raw.check_size:
                    size = sum(len(s.encode("utf-8", "surrogatepass")) for u in units for s in u
                               if isinstance(s, str))
                    if size > self.max_record_bytes:
                        raise BadRecord("record_too_large", f"record holds {size} bytes of text, "
                                        f"more than max_record_bytes={self.max_record_bytes}")
                for u in units:
                    for s in u[:3]:
                        if s is not None:
                            _check_utf8(s)
                rid = rec.get(self.id_field) if self.id_field else None
                if isinstance(rid, str):
                    _check_utf8(rid, "the id")
            except BadRecord as exc:
                bad(exc.reason, exc.message, raw.location(i))
                continue
            for unit in units:
                keep_rows.append(int(raw.rows[i]))
                if raw.lines is not None:
                    keep_lines.append(int(raw.lines[i]))
                ids.append(rid)
                for side, value in zip(sides, unit[:3], strict=True):
                    side.append(value)
                turns.append(unit[3])
        rows = np.asarray(keep_rows, np.int64)
        lines = np.asarray(keep_lines, np.int64) if raw.lines is not None else None
        id_arr = _ids_python(ids)
        if self.shape is Shape.TEXT:
            return RecordBatch(self.path, self.shape, rows, id_arr, text=_strings(sides[0]),
                               line=lines)
        rejected = _strings(sides[2]) if self.shape is Shape.PREFERENCE else None
        return RecordBatch(self.path, self.shape, rows, id_arr, prompt=_strings(sides[0]),
                           response=_strings(sides[1]), rejected=rejected,
                           turn=np.asarray(turns, np.int32), line=lines)

    def _unit_function(self) -> Callable[[dict[str, Any]], list[tuple[Any, ...]]]:
        shape = self.shape
        if shape is Shape.TEXT:
            field = self.required[0]
            return lambda rec: [(_string(rec, field), None, None, 0)]
        if shape is Shape.CHAT:
            return lambda rec: _chat_units(_list(rec, "messages"), ("role",), ("content",))
        if shape is Shape.SHAREGPT:
            return lambda rec: _chat_units(_list(rec, "conversations"), ("from", "role"),
                                           ("value", "content"))
        if shape is Shape.ALPACA:
            return _alpaca_unit
        if shape is Shape.PREFERENCE:
            return _preference_unit
        second = self.required[1]
        return lambda rec: [(_string(rec, "prompt"), _string(rec, second), None, 0)]


# Per-record helpers ----------------------------------------------------------------------------

def json_kind(value: Any) -> str:
    """The kind of a JSON value, for error messages: "a list", "a string", "null", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _missing(rec: dict[str, Any], name: str) -> BadRecord:
    return BadRecord("missing_field", f"record has no {name!r} field; fields found: "
                     f"{describe_fields(list(rec))}")


def _string(rec: dict[str, Any], name: str, required: bool = True) -> str:
    if name not in rec:
        if required:
            raise _missing(rec, name)
        return ""
    value = rec[name]
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):  # a Parquet binary column
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRecord("invalid_utf8", f"field {name!r} is not valid UTF-8") from None
    if value is None and not required:
        return ""
    raise BadRecord("wrong_type", f"field {name!r} is {json_kind(value)}, expected a string")


def _list(rec: dict[str, Any], name: str) -> list[Any]:
    if name not in rec:
        raise _missing(rec, name)
    value = rec[name]
    if not isinstance(value, list):
        raise BadRecord("wrong_type", f"field {name!r} is {json_kind(value)}, expected a list "
                        "of messages")
    return value


def _content(msg: dict[str, Any], keys: tuple[str, ...], where: str) -> str:
    value = next((msg[k] for k in keys if k in msg), None)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content parts: [{"type": "text", "text": ...}, ...]
        texts = [p.get("text") if isinstance(p, dict) else p for p in value]
        if all(isinstance(t, str) or t is None for t in texts):
            return SEP.join(t for t in texts if t)
    raise BadRecord("wrong_type", f"{where}: {keys[0]!r} is {json_kind(value)}, expected a string")


def _chat_units(messages: list[Any], role_keys: tuple[str, ...],
                content_keys: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """One unit per answered user turn: (system + user turn, assistant answer, None, turn).

    Consecutive non-assistant turns form one prompt; consecutive assistant turns one answer. A
    conversation with no answered turn still yields one unit, so its text is never lost.
    """
    system: list[str] = []
    pending: list[str] = []
    units: list[list[Any]] = []
    for k, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise BadRecord("wrong_type", f"message {k} is {json_kind(msg)}, expected an object")
        role = next((msg[r] for r in role_keys if r in msg), None)
        if not isinstance(role, str):
            raise BadRecord("wrong_type" if role is not None else "missing_field",
                            f"message {k} has no {role_keys[0]!r} string")
        text = _content(msg, content_keys, f"message {k}")
        role = role.lower()
        if role in SYSTEM_ROLES:
            system.append(text)
        elif role in ASSISTANT_ROLES:
            if pending or not units:
                units.append([_join(system + pending), text])
                pending = []
            else:
                units[-1][1] = _join([units[-1][1], text])
        else:
            pending.append(text)
    if not units:
        units.append([_join(system + pending), ""])
    return [(p, r, None, t) for t, (p, r) in enumerate(units)]


def _join(parts: list[str]) -> str:
    return SEP.join(p for p in parts if p)


def _alpaca_unit(rec: dict[str, Any]) -> list[tuple[Any, ...]]:
    instruction = _string(rec, "instruction")
    inp = _string(rec, "input", required=False)
    prompt = instruction + SEP + inp if inp else instruction
    return [(prompt, _string(rec, "output"), None, 0)]


def _answer(rec: dict[str, Any], name: str) -> tuple[str, str | None]:
    """A preference answer: (text, prompt derived from a message list or None)."""
    if name not in rec:
        raise _missing(rec, name)
    value = rec[name]
    if isinstance(value, (str, bytes)):  # (bytes: a Parquet binary column)
        return _string(rec, name), None
    if isinstance(value, list):
        units = _chat_units(value, ("role", "from"), ("content", "value"))
        return units[-1][1], units[-1][0]
    raise BadRecord("wrong_type", f"field {name!r} is {json_kind(value)}, expected a string or "
                    "a list of messages")


def _preference_unit(rec: dict[str, Any]) -> list[tuple[Any, ...]]:
    chosen, derived = _answer(rec, "chosen")
    rejected, _ = _answer(rec, "rejected")
    prompt_value = rec.get("prompt")
    if isinstance(prompt_value, list):
        prompt = _join([u[0] for u in _chat_units(prompt_value, ("role", "from"),
                                                   ("content", "value"))])
    elif prompt_value is None and derived is not None:
        prompt = derived
    else:
        prompt = _string(rec, "prompt", required=False)
    return [(prompt, chosen, rejected, 0)]


def _check_utf8(s: str, what: str = "text") -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRecord("invalid_utf8", f"{what} is not valid UTF-8 (lone surrogate or "
                        "undecodable bytes)") from None


# Arrow helpers ---------------------------------------------------------------------------------

def _not_nested(raw: RawBlock, names: tuple[str, ...]) -> bool:
    """Whether the block's fields are scalars (decides the flat fast path for the whole file)."""
    if raw.table is not None:
        schema = raw.table.schema
        return not any(pa.types.is_nested(schema.field(n).type) for n in names if n in schema.names)
    for rec in (raw.records or ())[:100]:
        if isinstance(rec, dict) and any(isinstance(rec.get(n), (list, dict)) for n in names):
            return False
    return True


def _is_stringlike(t: pa.DataType) -> bool:
    return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
            or (pa.types.is_dictionary(t) and _is_stringlike(t.value_type)))


def _as_large_string(col: pa.ChunkedArray | pa.Array, validate: bool = True) -> pa.Array | None:
    """A valid large_string array, or None when the column is of another type or invalid UTF-8."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), pa.large_string())
    if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
        try:
            return arr.cast(pa.large_string())
        except pa.ArrowInvalid:
            return None
    if not _is_stringlike(arr.type):
        return None
    if not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.large_string())
    if not validate:
        return arr
    try:
        arr.validate(full=True)
    except pa.ArrowInvalid:
        return None
    return arr


def _strings(values: list[str]) -> pa.Array:
    return pa.array(values, pa.large_string())


# Every integer up to 2**53 is exactly a float64; larger ones may not be.
_EXACT_FLOAT = float(2**53)


def rounded_ids(col: pa.Array) -> bool:
    """Whether a column of JSON ids that Arrow parsed as floats may hold rounded integers.

    Arrow's JSON parser reads a column as float64 once one number in it is outside int64's
    range, such as a 64-bit hash id above 2**63, and that rounds every id above 2**53: the
    suspects export would then name records by ids they do not have.
    """
    if not pa.types.is_floating(col.type) or len(col) == col.null_count:
        return False
    return bool(pc.max(pc.abs(col)).as_py() >= _EXACT_FLOAT)


def _ids_python(values: list[Any]) -> pa.Array:
    """Ids cast to strings the way Arrow casts them, so both paths agree."""
    try:
        return pa.array(values).cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return pa.array([None if v is None else v if isinstance(v, str)
                         else v.decode("utf-8", "backslashreplace") if isinstance(v, bytes)
                         else json.dumps(v, ensure_ascii=False) for v in values], pa.string())


"""The smallest pieces of EI XML decoding: one element's text read as an id, a decimal, a time or a boolean, and
the refusal (:class:`_Bad`) that names the element at fault.

Every reader of the codec (message, stream, object) builds on these, so a bad number or time is refused with the
same wording wherever it appears, and a refusal always carries the element it is about (turned into a path such
as ``eiCreateTender/eiTender/product/...`` by :func:`_path`).
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from lxml import etree
from pydantic import ValidationError

from gateway.protocols.ei.messages import ResponseCode
from gateway.protocols.ei.xml_names import _BOOLEANS, _E, _KEYS, _MAX_NUMBER_CHARS

_DECIMAL = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)\s*", re.ASCII)
# xs:float lexical space, with the exponent held to two digits (1e999999999 would be a valid float, and a
# Decimal that prints as a billion digits).
_FLOAT = re.compile(r"\s*(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,2})?|[+-]?INF|NaN)\s*", re.ASCII)
_UID = re.compile(r"\s*\d{1,12}\s*", re.ASCII)
# The same, for many values joined by NUL (which XML text cannot hold): one regex call for a whole column.
_UIDS, _DECIMALS, _FLOATS = (re.compile(f"{p.pattern}(?:\x00{p.pattern})*", re.ASCII) for p in (_UID, _DECIMAL, _FLOAT))
_ROW = re.compile(r"\brow (\d{1,6}):")
_RESPONSE_CODE = re.compile(r"\s*\d{3}\s*", re.ASCII)


class _Bad(Exception):
    """A refusal found while walking the tree: the element at fault and why (turned into EiDecodeError)."""

    def __init__(self, element: _E | None, reason: str, code: ResponseCode = ResponseCode.BAD_REQUEST) -> None:
        super().__init__(reason)
        self.element = element
        self.reason = reason
        self.code = code


def _one_line(text: str, limit: int = 600) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(key: str) -> str:
    prefix, _, local = key.partition(":")
    return local if prefix in ("", "?") else key


def _path(element: _E) -> str:
    """'eiCreateTender/eiTender/product/intervals/streamInterval[3]/...' for error messages (local names)."""
    parts: list[str] = []
    current: _E | None = element
    while current is not None:
        parent = current.getparent()
        name = etree.QName(current).localname
        if parent is not None:
            same = [c for c in parent if c.tag == current.tag]
            if len(same) > 1:
                name += f"[{same.index(current) + 1}]"
        parts.append(name)
        current = parent
    return "/".join(reversed(parts))


def _text(element: _E) -> str:
    """Text of an id-like element (stripped); refuses an empty one."""
    text = element.text
    if text is None or not (text := text.strip()):
        raise _Bad(element, "is empty")
    if len(element):
        raise _Bad(element, "must hold text, not elements")
    return text


def _raw_text(element: _E) -> str:
    """Free text (names, descriptions), exactly as written."""
    if len(element):
        raise _Bad(element, "must hold text, not elements")
    return element.text or ""


def _opt_text(element: _E) -> str | None:
    text = element.text
    return text.strip() or None if text is not None else None


def _opt_id(element: _E) -> str | None:
    """An id slot the schema requires but the sender may leave empty (an error reply for an unknown party)."""
    if len(element):
        raise _Bad(element, "must hold text, not elements")
    return _opt_text(element)


def _decimal(element: _E, pattern: re.Pattern[str] = _DECIMAL) -> Decimal:
    text = element.text
    if text is None or pattern.fullmatch(text) is None or len(element) or len(text) > _MAX_NUMBER_CHARS:
        kind = "an xs:decimal" if pattern is _DECIMAL else "a number (xs:float)"
        if len(element):
            raise _Bad(element, "must hold text, not elements")
        if not text or not text.strip():
            raise _Bad(element, f"is empty; expected {kind}")
        if len(text) > _MAX_NUMBER_CHARS:
            raise _Bad(element, f"number longer than {_MAX_NUMBER_CHARS} characters")
        raise _Bad(element, f"{text.strip()[:40]!r} is not {kind}")
    return Decimal(text)


def _float_decimal(element: _E) -> Decimal:
    """An EMIX quantity (xs:float lexical space) read exactly as a Decimal."""
    return _decimal(element, _FLOAT)


def _datetime(element: _E) -> datetime:
    text = element.text
    if text is not None:
        text = text.strip()
    if not text or len(element):
        raise _Bad(element, "is empty; expected a date-time such as 2030-01-07T00:00:00Z")
    if len(text) < 19 or len(text) > 40 or text[10] != "T":
        raise _Bad(element, f"{text[:40]!r} is not an xs:dateTime such as 2030-01-07T00:00:00Z")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _Bad(element, f"{text!r} is not a valid xs:dateTime") from None
    if value.tzinfo is None:
        raise _Bad(element, f"{text!r} has no UTC offset; add Z or +hh:mm")
    return value


def _bool(element: _E) -> bool:
    text = (element.text or "").strip()
    value = _BOOLEANS.get(text)
    if value is None:
        raise _Bad(element, f"{text[:20]!r} is not an xs:boolean (true/false)")
    return value


def _unexpected(child: _E, parent: _E) -> _Bad:
    return _Bad(child, f"unexpected element <{_show(_KEYS[child.tag])}> in <{_show(_KEYS[parent.tag])}>")


def _children(element: _E, allowed: frozenset[str], repeated: frozenset[str] = frozenset()) -> dict[str, Any]:
    """One pass over the children: key -> element (or list of elements for ``repeated`` keys)."""
    out: dict[str, Any] = {}
    keys = _KEYS
    for child in element:
        key = keys[child.tag]
        if key in repeated:
            out.setdefault(key, []).append(child)
        elif key in allowed:
            if key in out:
                raise _Bad(child, f"<{_show(key)}> appears twice")
            out[key] = child
        else:
            raise _unexpected(child, element)
    return out


def _require(parts: dict[str, Any], key: str, parent: _E) -> Any:
    found = parts.get(key)
    if found is None:
        raise _Bad(parent, f"missing <{key}>")
    return found


def _refused(element: _E, what: str, exc: ValidationError, rows: _E | None = None) -> _Bad:
    """A 422: the canonical model refused what the element says. Row errors point at their interval."""
    reasons = []
    at = element
    for error in exc.errors(include_url=False)[:3]:
        loc = error.get("loc", ())
        if rows is not None and loc and loc[0] == "rows":
            # rows.3.quantity, or a strip error on rows as a whole that says "row 3: ..."
            index = loc[1] if len(loc) >= 2 else _row_of(str(error.get("msg", "")))
            if isinstance(index, int) and 0 <= index < len(rows):
                at = rows[index]
        where = ".".join(str(part) for part in loc)
        reasons.append(f"{where}: {error.get('msg', '')}" if where else str(error.get("msg", "")))
    return _Bad(at, f"{what} refused: {'; '.join(reasons)}", ResponseCode.UNPROCESSABLE)


def _row_of(text: str) -> int | None:
    found = _ROW.search(text)
    return int(found.group(1)) if found else None


def _validate(model: Any, data: dict[str, Any], element: _E, what: str, rows: _E | None = None) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _refused(element, what, exc, rows) from None

"""Typed reads of an HTTP request's path, query string or JSON body for the API handlers.

What each place accepts is exactly what the OpenAPI document says:
- a JSON body is an object of at most `limits.BODY_BYTES` bytes, nested at most
  `limits.BODY_DEPTH` deep, with only known fields; its values have strict JSON types (an
  integer is a JSON number without a fraction, never the string "7"; a flag is true or
  false, never "yes" or 1; null is no value: leave the field out);
- a query or path value is text: an integer there is ASCII decimal digits (an optional
  minus sign), a day is YYYY-MM-DD; a scalar query field may be given once.
Every number is checked against its range in `softcopy.limits`. Anything else is a
`UserError` naming the field, with the bad value echoed cut short.
"""

from __future__ import annotations

import json
import re
from datetime import date
from enum import StrEnum
from typing import Any, TypeVar

from softcopy import limits
from softcopy.errors import ECHO_CHARS, BadDate, OutOfRange, UserError, echo
from softcopy.ingestion.planner import DEFAULT_LOOKBACK_DAYS
from softcopy.ingestion.service import PlanOptions
from softcopy.ingestion.states import PlanMode, Stage

E = TypeVar("E", bound=StrEnum)

PLAN_FIELDS = frozenset(
    {
        "mode",
        "sources",
        "stages",
        "range_start_day",
        "range_end_day",
        "lookback_days",
        "force",
        "reconciliation_id",
        "allow_shrink",
        "skip_bad_records",
    }
)
# "engine": the old name of "executor", accepted for one release
RUN_FIELDS = PLAN_FIELDS | {"plan_id", "executor", "engine", "chunk_days", "replan", "parallel"}
_INTEGER = re.compile(r"-?[0-9]+")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MAX_DIGITS = 30  # more digits than any range allows: out of range without parsing
_TOO_DEEP = object()


class Params:
    """Named values from the query or path (text) or a JSON object body (typed)."""

    def __init__(self, values: dict[str, Any], where: str) -> None:
        self.values = values
        self.where = where

    @classmethod
    def of_query(cls, arguments: dict[str, list[bytes]]) -> Params:
        """The query string's fields, each a list of its values (UTF-8 text)."""
        values: dict[str, list[str]] = {}
        for name, raw in arguments.items():
            try:
                values[name] = [_text(v.decode()) for v in raw]
            except (UnicodeDecodeError, ValueError):
                raise UserError(f"query field {echo(name)}: not UTF-8 text") from None
        return cls(values, where="query")

    @classmethod
    def of_path(cls, values: dict[str, str]) -> Params:
        return cls({k: [v] for k, v in values.items()}, where="path")

    @classmethod
    def of_json(cls, raw: bytes, allowed: set[str] | frozenset[str]) -> Params:
        """A JSON object body (no body at all is `{}`; blank text is not JSON) with only
        `allowed` fields."""
        if len(raw) > limits.BODY_BYTES:
            raise UserError(
                f"the request body has {len(raw)} bytes; at most {limits.BODY_BYTES} are read"
            )
        try:
            values = json.loads(raw) if raw else {}
        except RecursionError:
            values = _TOO_DEEP  # nested deeper than the parser goes: refused below
        except (ValueError, UnicodeDecodeError) as error:
            raise UserError(f"the request body is not JSON: {echo(str(error))}") from None
        if _depth(values) > limits.BODY_DEPTH:
            raise UserError(f"the request body is nested more than {limits.BODY_DEPTH} deep")
        if not isinstance(values, dict):
            raise UserError("the request body must be a JSON object")
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            known = ", ".join(sorted(allowed)) or "none"
            names = ", ".join(unknown)
            names = names if len(names) <= ECHO_CHARS else names[: ECHO_CHARS - 1] + "…"
            raise UserError(f"unknown field(s) {names}; known fields: {known}")
        nulls = sorted(name for name, value in values.items() if value is None)
        if nulls:
            raise UserError(f"body field {nulls[0]!r}: null is not a value; leave the field out")
        return cls(values, where="body")

    @property
    def _text_values(self) -> bool:
        return self.where != "body"

    def _one(self, name: str) -> Any:
        value = self.values.get(name)
        if self._text_values and isinstance(value, list):
            if len(value) > 1:
                raise UserError(
                    f"{self.where} field {name!r}: given {len(value)} times, once at most"
                )
            return value[0] if value else None
        return value

    def _bad(self, name: str, expected: str, value: Any) -> UserError:
        return UserError(f"{self.where} field {name!r}: expected {expected}, got {echo(value)}")

    def text(self, name: str) -> str | None:
        value = self._one(name)
        if value is not None and not isinstance(value, str):
            raise self._bad(name, "a string", value)
        return _checked_text(self, name, value)

    def strings(self, name: str) -> list[str] | None:
        """A list of names (a repeated query field, or a JSON list of strings)."""
        value = self.values.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self._bad(name, "a list of names", value)
        return [_checked_text(self, name, v) for v in value] or None

    def integer(self, name: str, bound: limits.Bound) -> int | None:
        """An integer in `bound`'s range, or None when absent."""
        value = self._one(name)
        if value is None:
            return None
        if self._text_values and isinstance(value, str) and _INTEGER.fullmatch(value):
            if len(value.lstrip("-")) > _MAX_DIGITS:
                raise OutOfRange(name, value, bound.minimum, bound.maximum)
            value = int(value)
        elif not self._text_values and isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON has one number type: 7.0 is the integer 7
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._bad(name, "an integer", value)
        return bound.check(value, field=name)

    def id(self, name: str, bound: limits.Bound) -> int:
        """A path id (always present: the route matched it)."""
        value = self.integer(name, bound)
        assert value is not None
        return value

    def flag(self, name: str) -> bool:
        """A JSON boolean; absent is false."""
        value = self._one(name)
        if value is None or isinstance(value, bool):
            return bool(value)
        raise self._bad(name, "true or false", value)

    def day(self, name: str) -> date | None:
        value = self._one(name)
        if value is None:
            return None
        try:
            if isinstance(value, str) and _DAY.fullmatch(value):
                return date.fromisoformat(value)
        except ValueError:
            pass
        raise BadDate(
            f"{self.where} field {name!r}: expected a day as YYYY-MM-DD, got {echo(value)}"
        )

    def enum(self, name: str, kind: type[E]) -> E | None:
        value = self._one(name)
        if value is None:
            return None
        if isinstance(value, str) and value in kind._value2member_map_:
            return kind(value)
        raise self._bad(name, f"one of {', '.join(kind)}", value)

    def choice(self, name: str, options: list[str]) -> str | None:
        """One of `options` (names known only at run time, e.g. the registered executors)."""
        value = self._one(name)
        if value is None or (isinstance(value, str) and value in options):
            return value
        raise self._bad(name, f"one of {', '.join(options)}", value)

    def enums(self, name: str, kind: type[E]) -> list[E] | None:
        value = self.values.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(
            isinstance(v, str) and v in kind._value2member_map_ for v in value
        ):
            raise self._bad(name, f"a list of {', '.join(kind)}", value)
        return [kind(v) for v in value] or None


def plan_options(params: Params, *, required: bool) -> PlanOptions | None:
    """How to choose a plan's cells; None when `mode` is absent and not `required`."""
    mode = params.enum("mode", PlanMode)
    if mode is None:
        if required:
            raise UserError(f"field 'mode' is required: one of {', '.join(PlanMode)}")
        return None
    lookback = params.integer("lookback_days", limits.LOOKBACK_DAYS)
    return PlanOptions(
        mode=mode,
        sources=params.strings("sources"),
        stages=params.enums("stages", Stage),
        range_start_day=params.day("range_start_day"),
        range_end_day=params.day("range_end_day"),
        lookback_days=DEFAULT_LOOKBACK_DAYS if lookback is None else lookback,
        force=params.flag("force"),
        reconciliation_id=params.integer("reconciliation_id", limits.RECONCILIATION_ID),
        allow_shrink=params.flag("allow_shrink"),
        skip_bad_records=params.flag("skip_bad_records"),
    )


def _text(value: str) -> str:
    """`value` if it can be written back as UTF-8 (no lone surrogates), else ValueError."""
    value.encode()
    return value


def _checked_text(params: Params, name: str, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return _text(value)
    except UnicodeEncodeError:
        raise params._bad(name, "text without lone surrogates", value) from None


def _depth(value: Any) -> int:
    """How deeply a parsed JSON value nests (one too deep to parse: without end)."""
    if value is _TOO_DEEP:
        return 1 << 30
    depth, level = 0, [value]
    while level:
        depth += 1
        if depth > limits.BODY_DEPTH:
            return depth
        level = [
            child
            for v in level
            if isinstance(v, (dict, list))
            for child in (v.values() if isinstance(v, dict) else v)
        ]
    return depth

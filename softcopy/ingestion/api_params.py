"""Typed reads of an HTTP request's query string or JSON body for the API handlers.

Every malformed value is a `UserError` naming the field, so the API answers 400 with a
message instead of a traceback; an unknown body field is refused rather than ignored.
"""

from __future__ import annotations

import json
from datetime import date
from enum import StrEnum
from typing import Any, TypeVar

from softcopy.errors import BadDate, UserError
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
    }
)
RUN_FIELDS = PLAN_FIELDS | {"plan_id", "engine", "chunk_days", "replan"}
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


class Params:
    """Named values from the query (each a list of strings) or a JSON object."""

    def __init__(self, values: dict[str, Any], where: str) -> None:
        self.values = values
        self.where = where

    @classmethod
    def of_json(cls, raw: bytes, allowed: set[str] | frozenset[str]) -> Params:
        """A JSON object body (an empty body is `{}`) with only `allowed` fields."""
        try:
            values = json.loads(raw) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError) as error:
            raise UserError(f"the request body is not JSON: {error}") from None
        if not isinstance(values, dict):
            raise UserError("the request body must be a JSON object")
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            known = ", ".join(sorted(allowed)) or "none"
            raise UserError(f"unknown field(s) {', '.join(unknown)}; known fields: {known}")
        return cls(values, where="body")

    def _one(self, name: str) -> Any:
        value = self.values.get(name)
        if isinstance(value, list) and self.where == "query":
            return value[-1] if value else None
        return value

    def _bad(self, name: str, expected: str, value: Any) -> UserError:
        return UserError(f"{self.where} field {name!r}: expected {expected}, got {value!r}")

    def text(self, name: str) -> str | None:
        value = self._one(name)
        if value is not None and not isinstance(value, str):
            raise self._bad(name, "a string", value)
        return value

    def strings(self, name: str) -> list[str] | None:
        """A list of strings (a repeated query parameter, or a JSON list or string)."""
        value = self.values.get(name)
        if value is None:
            return None
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
            raise self._bad(name, "a list of names", value)
        return items or None

    def integer(self, name: str, *, minimum: int | None = None) -> int | None:
        value = self._one(name)
        if value is None:
            return None
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._bad(name, "an integer", value)
        if minimum is not None and value < minimum:
            raise self._bad(name, f"an integer of at least {minimum}", value)
        return value

    def limit(self, default: int = 20, maximum: int = 1000) -> int:
        value = self.integer("limit", minimum=1)
        if value is not None and value > maximum:
            raise self._bad("limit", f"at most {maximum}", value)
        return default if value is None else value

    def offset(self) -> int:
        return self.integer("offset", minimum=0) or 0

    def flag(self, name: str) -> bool:
        value = self._one(name)
        if value is None or isinstance(value, bool):
            return bool(value)
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        raise self._bad(name, "true or false", value)

    def day(self, name: str) -> date | None:
        value = self._one(name)
        if value is None:
            return None
        try:
            if isinstance(value, str):
                return date.fromisoformat(value)
        except ValueError:
            pass
        raise BadDate(f"{self.where} field {name!r}: expected a day as YYYY-MM-DD, got {value!r}")

    def enum(self, name: str, kind: type[E]) -> E | None:
        value = self._one(name)
        if value is None:
            return None
        try:
            return kind(value)
        except ValueError:
            raise self._bad(name, f"one of {', '.join(kind)}", value) from None

    def enums(self, name: str, kind: type[E]) -> list[E] | None:
        names = self.strings(name)
        if names is None:
            return None
        try:
            return [kind(n) for n in names]
        except ValueError:
            raise self._bad(name, f"a list of {', '.join(kind)}", names) from None


def plan_options(params: Params, *, required: bool) -> PlanOptions | None:
    """How to choose a plan's cells; None when `mode` is absent and not `required`."""
    mode = params.enum("mode", PlanMode)
    if mode is None:
        if required:
            raise UserError(f"field 'mode' is required: one of {', '.join(PlanMode)}")
        return None
    lookback = params.integer("lookback_days", minimum=0)
    return PlanOptions(
        mode=mode,
        sources=params.strings("sources"),
        stages=params.enums("stages", Stage),
        range_start_day=params.day("range_start_day"),
        range_end_day=params.day("range_end_day"),
        lookback_days=DEFAULT_LOOKBACK_DAYS if lookback is None else lookback,
        force=params.flag("force"),
        reconciliation_id=params.integer("reconciliation_id"),
        allow_shrink=params.flag("allow_shrink"),
    )

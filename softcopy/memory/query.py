"""The search query language, parsed once into a `Query`, and its safe FTS5 form.

    release plan          either word (ranked: items with both come first)
    "release plan"        the phrase, words in this order (required)
    relea*                words starting with "relea"
    -garden  -"new york"  no item holding the word or phrase
    source:mail           only this source (repeatable: any of them)
    since:2026-01-01      items on or after the day; until:2026-01-31 on or before

User text never reaches FTS5 MATCH as it is: each word is cut to its letters and digits and
quoted, so MATCH only ever sees quoted strings, `*`, AND, OR, NOT and parentheses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from softcopy.errors import UserError

WORD = re.compile(r"\w+", re.UNICODE)
# a token: an optional '-', then a "quoted phrase" or a run of non-blank characters
TOKEN = re.compile(r'\s*(-?)(?:"([^"]*)("?)|(\S+))', re.UNICODE)
FILTER = re.compile(r"(source|since|until):(.*)", re.IGNORECASE)
# words too common to count alone as a full-text match (they still count inside a phrase)
STOPWORDS = frozenset(
    """a about above after again all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers him his how i if in into is it its just
    me more most my no nor not now of off on once only or other our ours out over own same
    she should so some such than that the their theirs them then there these they this
    those through to too under until up very was we were what when where which while who
    whom why will with would you your yours""".split()  # noqa: SIM905
)


class BadQuery(UserError):
    """A search query that cannot be read: the message says what and where."""

    def __init__(self, query: str, reason: str) -> None:
        self.query = query
        self.reason = reason
        super().__init__(f"search query {query!r}: {reason}")


@dataclass(frozen=True)
class Query:
    """A parsed query. Words, prefixes and phrases are lower-case word tuples."""

    words: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    phrases: tuple[tuple[str, ...], ...] = ()
    excluded: tuple[tuple[str, ...], ...] = ()  # each a word (1-tuple) or a phrase
    sources: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None
    text: str = field(default="", compare=False)  # as typed

    @property
    def semantic_text(self) -> str:
        """What the embedder reads: the words, prefixes and phrases, without the operators."""
        parts = [*self.words, *self.prefixes, *(" ".join(p) for p in self.phrases)]
        return " ".join(parts)

    def match(self) -> str | None:
        """The FTS5 expression of every lexical condition, or None when nothing is lexical."""
        optional = self.optional_match()
        required = self.required_match()
        if optional and required:
            positive = f"{required} AND ({optional})"
        else:
            positive = required or (f"({optional})" if optional else None)
        if positive is None:
            return None
        excluded = self.excluded_match()
        return f"{positive} NOT {excluded}" if excluded else positive

    def optional_match(self) -> str | None:
        """Words and prefixes, any of them: `"w1" OR "w2" OR "pre"*`."""
        words = [w for w in self.words if w not in STOPWORDS]
        if not (words or self.prefixes or self.phrases):
            words = list(self.words)  # a query of common words only still looks for them
        terms = [_quoted(w) for w in words] + [f"{_quoted(p)}*" for p in self.prefixes]
        return " OR ".join(terms) or None

    def required_match(self) -> str | None:
        """The phrases, all of them."""
        return " AND ".join(_quoted(" ".join(p)) for p in self.phrases) or None

    def excluded_match(self) -> str | None:
        if not self.excluded:
            return None
        return "(" + " OR ".join(_quoted(" ".join(p)) for p in self.excluded) + ")"


def _quoted(text: str) -> str:
    # parse() keeps only \w characters, so a double quote cannot occur; double it anyway
    return '"' + text.replace('"', '""') + '"'


def parse(text: str) -> Query:
    """Read `text` in the query language; a BadQuery names what is wrong."""
    words: list[str] = []
    prefixes: list[str] = []
    phrases: list[tuple[str, ...]] = []
    excluded: list[tuple[str, ...]] = []
    sources: list[str] = []
    since: date | None = None
    until: date | None = None
    position = 0
    stripped = text.rstrip()
    while position < len(stripped):
        found = TOKEN.match(stripped, position)
        if found is None:  # pragma: no cover - TOKEN matches any non-blank character
            break
        position = found.end()
        negate, phrase, closed, bare = found.groups()
        if phrase is not None:
            if not closed:
                raise BadQuery(text, 'a phrase is missing its closing "')
            terms = tuple(w.lower() for w in WORD.findall(phrase))
            if not terms:
                continue
            if negate:
                excluded.append(terms)
            elif len(terms) == 1:
                words.append(terms[0])
            else:
                phrases.append(terms)
            continue
        filter_ = FILTER.fullmatch(bare)
        if filter_ and negate:
            raise BadQuery(text, f"-{filter_.group(1)}: cannot be negated; name what to keep")
        if filter_:
            key, value = filter_.group(1).lower(), filter_.group(2)
            if not value:
                raise BadQuery(text, f"{key}: needs a value, as in {key}:{_example(key)}")
            if key == "source":
                sources.append(value)
            elif key == "since":
                since = _day(text, key, value)
            else:
                until = _day(text, key, value)
            continue
        if bare.endswith("*") and not negate:
            stem = WORD.findall(bare[:-1])
            if stem:
                words.extend(w.lower() for w in stem[:-1])
                prefixes.append(stem[-1].lower())
            continue
        terms = tuple(w.lower() for w in WORD.findall(bare))
        if not terms:
            continue
        if negate:
            excluded.append(terms)
        else:
            words.extend(terms)
    if since and until and since > until:
        raise BadQuery(text, f"since:{since} is after until:{until}")
    if not (words or prefixes or phrases):
        raise BadQuery(text, "nothing to look for: give at least one word or phrase")
    return Query(
        words=tuple(words),
        prefixes=tuple(prefixes),
        phrases=tuple(phrases),
        excluded=tuple(excluded),
        sources=tuple(dict.fromkeys(sources)),
        since=since,
        until=until,
        text=text,
    )


def _example(key: str) -> str:
    return "mail" if key == "source" else "2026-01-31"


def _day(text: str, key: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadQuery(text, f"{key}:{value} is not a day (YYYY-MM-DD)") from None

"""The full-text side of the PostgreSQL index (softcopy.memory.pg_index), in FTS5's terms:
an item's tokens as a tsvector literal, a Query as the tsquery of its FTS5 MATCH expression,
a phrase's weighted instances (bm25's term frequency), and a snippet of the matched words."""

from __future__ import annotations

import re
from dataclasses import dataclass

from softcopy.memory.query import STOPWORDS, Query
from softcopy.memory.tokens import terms, tokenize

TEXT_CHARS = 1_000_000  # an item's text searchable as words (a tsvector holds at most 1 MB)
TSVECTOR_BYTES = 900_000  # leave room under that 1 MB for tsvector's own overhead
MAX_POSITION = 16383  # tsvector positions stop here
MAX_POSITIONS = 256  # and keep this many per word
MAX_LEXEME = 2047  # bytes: a longer "word" cannot be stored (it is left out)
WEIGHTS = {"A": 2.0, "D": 1.0}  # title, text: as bm25(docs_fts, 2.0, 1.0)
_SNIPPET_WORD = re.compile(r"[^\W_]+")
SNIPPET_TOKENS = 16


@dataclass(frozen=True)
class Phrase:
    """One FTS5 phrase: its tokens in order; `prefix`: the last one is a prefix."""

    tokens: tuple[str, ...]
    prefix: bool = False

    def tsquery(self) -> str:
        lexemes = [quoted(t) for t in self.tokens]
        if self.prefix:
            lexemes[-1] += ":*"
        return " <-> ".join(lexemes)

    def frequency(self, lexemes: dict[str, list[tuple[int, str]]]) -> float:
        """bm25's f(q, D): the phrase's instances in an item, each by its column's weight."""
        sets = [self._positions(i, lexemes) for i in range(len(self.tokens))]
        total = 0.0
        for position, weight in sorted(sets[0].items()):
            if all(position + j in sets[j] for j in range(1, len(sets))):
                total += WEIGHTS[weight]
        return total

    def _positions(self, i: int, lexemes: dict[str, list[tuple[int, str]]]) -> dict[int, str]:
        token = self.tokens[i]
        if self.prefix and i == len(self.tokens) - 1:
            found = [p for lexeme, ps in lexemes.items() if lexeme.startswith(token) for p in ps]
        else:
            found = lexemes.get(token, [])
        return dict(found)


@dataclass(frozen=True)
class Lexical:
    """A Query as FTS5 reads its MATCH expression (softcopy.memory.query): `required AND
    (optional) NOT excluded`, each phrase tokenized as the index tokenizes."""

    required: tuple[Phrase, ...]
    optional: tuple[Phrase, ...]
    excluded: tuple[Phrase, ...]

    @classmethod
    def of(cls, query: Query) -> Lexical:
        words = [w for w in query.words if w not in STOPWORDS]
        if not (words or query.prefixes or query.phrases):
            words = list(query.words)  # as Query.optional_match
        return cls(
            required=tuple(Phrase(tuple(terms(" ".join(p)))) for p in query.phrases),
            optional=(
                *(Phrase(tuple(terms(w))) for w in words),
                *(Phrase(tuple(terms(p)), prefix=True) for p in query.prefixes),
            ),
            excluded=tuple(e for p in query.excluded if (e := Phrase(tuple(terms(" ".join(p)))))),
        )

    @property
    def impossible(self) -> bool:
        """An empty phrase matches nothing in FTS5: required, or all the optional ones."""
        optional_empty = bool(self.optional) and not any(p.tokens for p in self.optional)
        return any(not p.tokens for p in self.required) or optional_empty

    @property
    def scored(self) -> list[Phrase]:
        """The phrases bm25 sums over, in FTS5's order (excluded ones count zero)."""
        return [*self.required, *(p for p in self.optional if p.tokens)]

    def required_tsquery(self) -> str | None:
        return " & ".join(f"( {p.tsquery()} )" for p in self.required) or None

    def optional_tsquery(self) -> str | None:
        return " | ".join(f"( {p.tsquery()} )" for p in self.optional if p.tokens) or None

    def excluded_tsquery(self) -> str | None:
        return " | ".join(f"( {p.tsquery()} )" for p in self.excluded if p.tokens) or None

    def tsquery(self) -> str | None:
        if self.impossible:
            return None
        parts = [f"( {q} )" for q in (self.required_tsquery(), self.optional_tsquery()) if q]
        if not parts:
            return None
        excluded = self.excluded_tsquery()
        if excluded:
            parts.append(f"!( {excluded} )")
        return " & ".join(parts)


def quoted(token: str) -> str:
    return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"


def weighted_counts(title: list[str], text: list[str]) -> dict[str, int]:
    """Each word's count in an item, a title's twice (bm25's f(q, D) for a one-word phrase,
    kept beside the tsvector so ranking need not unpack it)."""
    counts: dict[str, int] = {}
    for tokens, weight in ((title, 2), (text, 1)):
        for token in tokens:
            counts[token] = counts.get(token, 0) + weight
    return counts


def tsvector(title: list[str], text: list[str]) -> str:
    """The tsvector literal of an item's tokens: title words weighted A at positions 1..,
    text words from one position after the title's last (so no phrase spans the two)."""
    positions: dict[str, list[str]] = {}
    starts = ((title, 1, "A"), (text, len(title) + 2, ""))
    for tokens, start, mark in starts:
        for offset, token in enumerate(tokens):
            held = positions.setdefault(token, [])
            position = min(start + offset, MAX_POSITION)
            if len(held) < MAX_POSITIONS and not (held and held[-1].startswith(str(position))):
                held.append(f"{position}{mark}")
    words = []
    size = 0
    for token, held in positions.items():
        if len(token.encode()) > MAX_LEXEME:
            continue
        size += len(token.encode()) + 2 * len(held) + 6
        if size > TSVECTOR_BYTES:
            break  # the rest of a huge item's words are not searchable as text
        words.append(f"{quoted(token)}:{','.join(held)}")
    return " ".join(words)


def snippet(text: str, phrases: list[Phrase]) -> str | None:
    """About SNIPPET_TOKENS words of `text` around its best cluster of the query's words,
    each in [brackets], with '…' where the text goes on (as FTS5's snippet() shows them);
    None when the text holds none of them."""
    spans = [m.span() for m in _SNIPPET_WORD.finditer(text[: TEXT_CHARS // 10])]
    stems = [t for _, t in tokenize([("", text[a:b]) for a, b in spans])]
    words = {t for p in phrases for t in (p.tokens[:-1] if p.prefix else p.tokens)}
    prefixes = tuple(p.tokens[-1] for p in phrases if p.prefix)
    marked = [any(s in words or (prefixes and s.startswith(prefixes)) for s in st) for st in stems]
    best: list[int] = []
    best_score = -1
    for first in (i for i, m in enumerate(marked) if m):
        window = [i for i in range(first, min(first + SNIPPET_TOKENS, len(spans))) if marked[i]]
        score = 1000 * len({s for i in window for s in stems[i]}) + len(window)
        if score > best_score:
            best, best_score = window, score
    if not best:
        return None
    slack = SNIPPET_TOKENS - (best[-1] - best[0] + 1)  # centre the marked words
    end = min(len(spans), max(0, best[0] - slack // 2) + SNIPPET_TOKENS)
    start = max(0, end - SNIPPET_TOKENS)
    pieces = ["" if start == 0 else "…"]
    cursor = 0 if start == 0 else spans[start][0]
    for i in range(start, end):
        a, b = spans[i]
        pieces += [text[cursor:a], f"[{text[a:b]}]" if marked[i] else text[a:b]]
        cursor = b
    pieces.append(text[cursor:] if end == len(spans) and len(text) <= TEXT_CHARS // 10 else "…")
    return "".join(pieces).replace("\n", " ")

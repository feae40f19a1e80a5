"""Visible text of an HTML mail body, by the stdlib `html.parser`: for messages with no
text/plain part."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_WHITESPACE = re.compile(r"\s+")


class _TextExtractor(HTMLParser):
    """Collects the visible text of an HTML document; source line breaks are only spaces."""

    _SKIP = frozenset({"script", "style"})
    _BREAKS = frozenset(
        {"br", "p", "div", "li", "tr", "table", "ul", "ol", "blockquote", "pre", "hr"}
        | {"h1", "h2", "h3", "h4", "h5", "h6", "section", "article"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skipping = 0
        self.in_pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif tag in self._BREAKS:
            self.chunks.append("\n")
            self.in_pre += tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self._BREAKS:
            self.chunks.append("\n")
            self.in_pre = max(0, self.in_pre - (tag == "pre"))

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.chunks.append(data if self.in_pre else _WHITESPACE.sub(" ", data))


def html_to_text(html: str) -> str:
    """Visible text, one line per block, runs of whitespace collapsed."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.chunks).split("\n"))
    return "\n".join(line for line in lines if line)

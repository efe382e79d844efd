"""Reading the HTML our pages and the query UI serve, for the tests that check them."""

from __future__ import annotations

import json
from html.parser import HTMLParser


class Page(HTMLParser):
    """Tags, attributes, script bodies and text of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.text: list[str] = []
        self._script: dict[str, str | None] | None = None
        self._body: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script, self._body = dict(attrs), []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._body)))
            self._script = None

    def handle_data(self, data: str) -> None:
        (self._body if self._script is not None else self.text).append(data)

    @property
    def hrefs(self) -> list[str]:
        return [a["href"] or "" for tag, a in self.tags if tag == "a" and "href" in a]

    @property
    def plain(self) -> str:
        return " ".join(" ".join(self.text).split())

    def jsonld(self) -> dict[str, object]:
        blocks = [body for a, body in self.scripts if a.get("type") == "application/ld+json"]
        assert len(blocks) == 1
        data: dict[str, object] = json.loads(blocks[0])
        return data


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page

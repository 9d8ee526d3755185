"""Reading the numbers on a report page back, with their labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

from fairpilot_jobs.reports.html import (
    ROUNDED_MARK,
    ROUNDED_NOTE,
    format_exact,
    format_rounded,
)


@dataclass
class Cell:
    text: str = ""
    attrs: dict[str, str | None] = field(default_factory=dict)
    marked: bool = False  # holds the "rounded" mark (<abbr class="rounded">)

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())


@dataclass
class Table:
    attrs: dict[str, str | None]
    head: list[Cell] = field(default_factory=list)
    rows: list[list[Cell]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def column(self, name: str) -> int:
        return [h.text.removesuffix(ROUNDED_MARK).strip() for h in self.head].index(name)


class Page(HTMLParser):
    """The tables (header, rows, the notes that follow them) and the cards of a report."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[Table] = []
        self.cards: dict[str, Cell] = {}
        self._table: Table | None = None
        self._cell: Cell | None = None
        self._in_head = False
        self._card_label: str | None = None
        self._card_part: str | None = None
        self._note: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        css = set((found.get("class") or "").split())
        if tag == "table":
            self._table = Table(found)
            self.tables.append(self._table)
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr" and self._table is not None and not self._in_head:
            self._table.rows.append([])
        elif tag in ("th", "td") and self._table is not None:
            self._cell = Cell(attrs=found)
            if self._in_head:
                self._table.head.append(self._cell)
            else:
                self._table.rows[-1].append(self._cell)
        elif tag == "abbr" and "rounded" in css and self._cell is not None:
            self._cell.marked = True
        elif tag == "div" and css & {"card-label", "card-value"}:
            self._card_part = "label" if "card-label" in css else "value"
            if self._card_part == "value":
                assert self._card_label is not None
                self._cell = Cell(attrs=found)
                self.cards[self._card_label] = self._cell
            else:
                self._card_label = ""
        elif tag == "p" and "note" in css and self.tables:
            self._note = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag == "thead":
            self._in_head = False
        elif tag in ("th", "td") or (tag == "div" and self._card_part == "value"):
            self._cell = None
            self._card_part = None
        elif tag == "div" and self._card_part == "label":
            self._card_part = None
        elif tag == "p" and self._note is not None:
            self.tables[-1].notes.append("".join(self._note))
            self._note = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.text += data
        elif self._card_part == "label":
            self._card_label = (self._card_label or "") + data
        if self._note is not None:
            self._note.append(data)


def parse_page(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def assert_numbers_labelled(page: Page) -> None:
    """Every number in a data table is exact, or its column is marked rounded (with the note
    under the table) and the cell holds every digit in its tooltip."""
    for table in page.tables:
        if "data" not in table.classes:
            continue
        for row in table.rows:
            for index, cell in enumerate(row):
                raw = cell.attrs.get("data-sort")
                if raw is None:
                    continue
                exact = format_exact(float(raw))
                if cell.text == exact:
                    continue
                header = table.head[index].text.strip()
                assert table.head[index].marked, f"{header}: {cell.text} is not {exact}"
                assert ROUNDED_NOTE in table.notes
                assert cell.attrs.get("title") == exact
                assert cell.text == format_rounded(float(raw))

"""A small document model that renders to one self-contained HTML page.

A :class:`Report` is a list of blocks (headings, text, KPI cards, tables, charts, JSON) built
in order and rendered through a Jinja2 template with autoescaping: every piece of text is
HTML-escaped, and charts are checked by :func:`~conveyor.reports.svg.sanitize_svg` before they
are embedded. The page has its CSS inline and loads nothing from the network.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, ClassVar

import jinja2
import numpy as np
from markupsafe import Markup

from conveyor.core.clock import as_utc
from conveyor.core.errors import InvalidInputError
from conveyor.reports.svg import sanitize_svg

__all__ = ["Report"]

_MISSING = "—"


@dataclasses.dataclass(frozen=True, slots=True)
class _Heading:
    kind: ClassVar[str] = "heading"
    text: str
    anchor: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Text:
    kind: ClassVar[str] = "text"
    paragraphs: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class _Metrics:
    kind: ClassVar[str] = "metrics"
    cards: tuple[tuple[str, str], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class _Table:
    kind: ClassVar[str] = "table"
    columns: tuple[tuple[str, bool], ...]
    rows: tuple[tuple[tuple[str, bool], ...], ...]
    caption: str
    hidden_rows: int


@dataclasses.dataclass(frozen=True, slots=True)
class _Chart:
    kind: ClassVar[str] = "chart"
    svg: Markup
    caption: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Json:
    kind: ClassVar[str] = "json"
    name: str
    text: str


_Block = _Heading | _Text | _Metrics | _Table | _Chart | _Json


class Report:
    """An HTML report, built block by block and rendered as one self-contained page.

    Parameters
    ----------
    title : str
        The page title and main heading.
    subtitle : str, optional
        A line under the title (project, model version, window).
    generated_at : datetime, optional
        Shown under the title (in UTC) when given; the page has no clock of its own, so the
        same report renders to the same bytes.

    Examples
    --------
    >>> report = Report("Monitoring", subtitle="churn, week 12")
    >>> report.add_heading("Summary")
    >>> report.add_metrics({"auc": 0.912, "rows": 12345, "drifted features": 2})
    >>> report.add_table([{"feature": "age", "psi": 0.31}, {"feature": "fare", "psi": 0.02}])
    >>> html = report.render()
    >>> "12,345" in html and "<h2" in html
    True
    """

    def __init__(
        self, title: str, subtitle: str = "", *, generated_at: datetime | None = None
    ) -> None:
        self.title = title
        self.subtitle = subtitle
        self.generated_at = generated_at
        self._blocks: list[_Block] = []
        self._anchors: set[str] = set()

    @property
    def blocks(self) -> tuple[object, ...]:
        """The blocks added so far, in order (read-only snapshots)."""
        return tuple(self._blocks)

    def add_heading(self, text: str) -> None:
        """Start a section: a second-level heading, also listed in the page's contents."""
        self._blocks.append(_Heading(text=str(text), anchor=self._new_anchor(str(text))))

    def add_text(self, text: str) -> None:
        """Add prose; blank lines separate paragraphs, and no markup is interpreted."""
        paragraphs = tuple(p.strip() for p in re.split(r"\n\s*\n", str(text)) if p.strip())
        if paragraphs:
            self._blocks.append(_Text(paragraphs=paragraphs))

    def add_metrics(self, mapping: Mapping[str, Any]) -> None:
        """Add a row of KPI cards, one per item: the key as label, the value formatted.

        Numbers get thousands separators and about four significant digits, datetimes are
        shown in UTC and ``None`` or NaN as a dash.
        """
        cards = tuple((str(label), format_value(value)) for label, value in mapping.items())
        if cards:
            self._blocks.append(_Metrics(cards=cards))

    def add_table(
        self,
        rows: Sequence[Mapping[str, Any]],
        columns: Sequence[str] | None = None,
        *,
        caption: str = "",
        max_rows: int | None = None,
    ) -> None:
        """Add a table with one row per mapping.

        Parameters
        ----------
        rows : sequence of mapping
            The rows; a key a row lacks is an empty cell.
        columns : sequence of str, optional
            Columns in order; by default every key, in order of first appearance.
        caption : str, optional
            A line above the table.
        max_rows : int, optional
            Show at most this many rows and say how many more there are.

        Raises
        ------
        InvalidInputError
            If a row is not a mapping or ``max_rows`` is negative.
        """
        for index, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise InvalidInputError(
                    f"Row {index} of add_table() must be a mapping of column to value. Got "
                    f"{type(row).__name__} instead."
                )
        if max_rows is not None and max_rows < 0:
            raise InvalidInputError(
                f"The 'max_rows' parameter of add_table() must be an int in [0, inf) or None. "
                f"Got {max_rows} instead."
            )
        names = (
            list(columns)
            if columns is not None
            else list(dict.fromkeys(key for row in rows for key in row))
        )
        shown = rows if max_rows is None else rows[:max_rows]
        numeric = tuple(
            any(name in row for row in shown)
            and all(_is_number(row[name]) for row in shown if name in row and row[name] is not None)
            for name in names
        )
        body = tuple(
            tuple(
                (format_value(row[name]) if name in row else "", is_num)
                for name, is_num in zip(names, numeric, strict=True)
            )
            for row in shown
        )
        self._blocks.append(
            _Table(
                columns=tuple(
                    (str(name), is_num) for name, is_num in zip(names, numeric, strict=True)
                ),
                rows=body,
                caption=str(caption),
                hidden_rows=len(rows) - len(shown),
            )
        )

    def add_chart(self, svg: str, caption: str = "") -> None:
        """Add a chart, such as one from :func:`conveyor.reports.line_chart`.

        Raises
        ------
        InvalidInputError
            If ``svg`` is not a self-contained, script-free SVG element (see
            :func:`~conveyor.reports.svg.sanitize_svg`).
        """
        self._blocks.append(_Chart(svg=Markup(sanitize_svg(svg)), caption=str(caption)))

    def add_json(self, name: str, obj: Any) -> None:
        """Add ``obj`` as pretty-printed JSON in a collapsed block titled ``name``.

        Datetimes, dates, enums, dataclasses, paths, sets and numpy values are converted;
        anything else JSON cannot hold is shown through ``str()``.
        """
        text = json.dumps(obj, indent=2, ensure_ascii=False, default=_to_json)
        self._blocks.append(_Json(name=str(name), text=text))

    def render(self) -> str:
        """Return the report as one HTML document with inline CSS and SVG."""
        headings = [block for block in self._blocks if isinstance(block, _Heading)]
        generated = (
            as_utc(self.generated_at).strftime("%Y-%m-%d %H:%M UTC") if self.generated_at else ""
        )
        return _template().render(
            title=self.title,
            subtitle=self.subtitle,
            generated_at=generated,
            toc=[(h.anchor, h.text) for h in headings] if len(headings) >= 3 else [],
            blocks=self._blocks,
        )

    def write(self, path: Path | str) -> Path:
        """Render the report and write it to ``path`` atomically, creating parent folders.

        The page goes to a temporary file in the same folder, which then replaces ``path`` in
        one step: a reader sees the old file or the new one, never part of one, and a failure
        leaves no temporary file behind.

        Returns
        -------
        Path
            ``path``.
        """
        target = Path(path)
        text = self.render()
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
        )
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
                stream.write(text)
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(temporary, 0o644)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        return target

    def _new_anchor(self, text: str) -> str:
        base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
        anchor, number = base, 2
        while anchor in self._anchors:
            anchor, number = f"{base}-{number}", number + 1
        self._anchors.add(anchor)
        return anchor


def format_value(value: Any) -> str:
    """Format one value for a KPI card or a table cell.

    Examples
    --------
    >>> [format_value(v) for v in (1234567, 0.912345, 0.00001234, None, True, float("nan"))]
    ['1,234,567', '0.9123', '1.23e-05', '—', 'yes', '—']
    """
    if value is None:
        return _MISSING
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        return _format_float(float(value))
    if isinstance(value, datetime):
        moment = as_utc(value)
        if (moment.hour, moment.minute, moment.second, moment.microsecond) == (0, 0, 0, 0):
            return moment.strftime("%Y-%m-%d")
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if moment.second else "%Y-%m-%d %H:%M UTC")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=_to_json)
    return str(value)


def _format_float(value: float) -> str:
    if math.isnan(value):
        return _MISSING
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    magnitude = abs(value)
    if magnitude >= 10_000:
        return f"{value:,.0f}"
    if magnitude >= 1_000:
        return f"{value:,.1f}"
    if magnitude != 0 and magnitude < 1e-3:
        return f"{value:.2e}"
    return f"{value:.4g}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


@functools.cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("conveyor.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return environment.get_template("report.html")

"""Render matplotlib figures to inline SVG, and check SVG before it goes into a page.

Figures are drawn without pyplot, on their own Agg canvas, under a temporary rc context: importing
this module changes no global matplotlib state, and charts look the same whatever the caller's
``matplotlibrc`` says. Text stays text (``svg.fonttype = "none"``), so charts are small, crisp at
any zoom and use the page's fonts.

Every id in an SVG is made unique to that chart (a prefix derived from its content), so any number
of charts can sit in one HTML document without their clip paths and markers clashing, and the same
chart always renders to the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import matplotlib as mpl
from cycler import cycler
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from conveyor.core.errors import InvalidInputError

__all__ = ["FONT_STACK", "PALETTE", "render_svg", "sanitize_svg"]

#: Okabe-Ito colours: distinguishable with the common forms of colour blindness.
PALETTE: tuple[str, ...] = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#7F7F7F",
    "#F0E442",
)

#: The font stack of the HTML reports; chart text uses it too.
FONT_STACK = (
    'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, '
    '"Noto Sans", "DejaVu Sans", sans-serif'
)

_INK = "#2b2f36"
_MUTED = "#5f6670"
_STYLE: dict[str, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "conveyor",
    "svg.image_inline": True,
    "figure.facecolor": "white",
    "figure.dpi": 72,
    "savefig.dpi": 72,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 9,
    "text.color": _INK,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.titlepad": 8,
    "axes.labelsize": 9,
    "axes.labelcolor": _MUTED,
    "axes.edgecolor": "#b8bec6",
    "axes.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "axes.prop_cycle": cycler(color=PALETTE),
    "grid.color": "#e8eaed",
    "grid.linewidth": 0.7,
    "xtick.color": _MUTED,
    "ytick.color": _MUTED,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.frameon": False,
    "legend.fontsize": 8,
    "lines.linewidth": 1.7,
    "lines.markersize": 4,
    "path.simplify": True,
}

# rc_context swaps process-wide rcParams; the lock keeps concurrent renders (a web server's thread
# pool) from seeing each other's settings.
_RENDER_LOCK = threading.Lock()

_SVG_NS = "http://www.w3.org/2000/svg"
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_FORBIDDEN_TAGS = frozenset({"script", "foreignObject", "iframe", "object", "embed"})
_FONT_FAMILY = re.compile(r"font-family: [^;\"]*")
_ID_ATTR = re.compile(r' id="([^"]+)"')
_ID_REF = re.compile(r'(url\(#|href="#)([^)"]+)')
_CSS_URL = re.compile(r"url\(\s*['\"]?([^)'\"]*)")
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.DOTALL)


def render_svg(draw: Callable[[Figure], None], *, size_in: tuple[float, float]) -> str:
    """Draw a figure with Conveyor's chart style and return it as an inline SVG element.

    Parameters
    ----------
    draw : callable
        Called with a fresh, empty :class:`matplotlib.figure.Figure` (constrained layout);
        it adds axes and artists.
    size_in : tuple of float
        Figure width and height in inches (72 SVG units per inch).

    Returns
    -------
    str
        One ``<svg>`` element, without XML declaration or doctype, ready to embed in HTML.

    Examples
    --------
    >>> svg = render_svg(lambda fig: fig.add_subplot().plot([0, 1], [1, 0]), size_in=(3, 2))
    >>> svg.startswith("<svg")
    True
    """
    with _RENDER_LOCK, mpl.rc_context(_STYLE):  # type: ignore[arg-type]
        fig = Figure(figsize=size_in, layout="constrained")
        FigureCanvasAgg(fig)
        draw(fig)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    return _tidy(buffer.getvalue())


def _tidy(text: str) -> str:
    """Strip the prolog and metadata, use the page fonts, make ids unique to this chart."""
    text = _METADATA.sub("", text[text.index("<svg") :]).strip()
    text = _FONT_FAMILY.sub(f"font-family: {FONT_STACK.replace(chr(34), chr(39))}", text)
    referenced = {match.group(2) for match in _ID_REF.finditer(text)}
    prefix = "cv" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:10] + "-"

    def rename(match: re.Match[str]) -> str:
        name = match.group(1)
        return f' id="{prefix}{name}"' if name in referenced else ""

    text = _ID_ATTR.sub(rename, text)
    return _ID_REF.sub(lambda match: f"{match.group(1)}{prefix}{match.group(2)}", text)


def sanitize_svg(svg: str) -> str:
    """Check that ``svg`` is one self-contained, script-free SVG element and return it.

    An XML declaration or doctype in front of the element is removed. The check refuses what
    could run code or reach the network from a report: script-like elements, ``on*`` event
    attributes, ``javascript:`` anywhere, and links other than in-document (``#id``) or inline
    images (``data:image/...``).

    Parameters
    ----------
    svg : str
        The SVG text, for example from :func:`conveyor.reports.line_chart`.

    Returns
    -------
    str
        The ``<svg>`` element alone.

    Raises
    ------
    InvalidInputError
        If the text is not well-formed XML, its root is not an SVG element, or it holds
        something active or external.

    Examples
    --------
    >>> sanitize_svg('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>')
    '<svg xmlns="http://www.w3.org/2000/svg"/>'
    """
    start = svg.find("<svg")
    if start < 0:
        raise InvalidInputError(
            f"The chart must be an SVG document with an <svg> root element. Got {svg[:60]!r} "
            "instead."
        )
    element = svg[start:].strip()
    try:
        root = ET.fromstring(element)
    except ET.ParseError as exc:
        raise InvalidInputError(
            f"The chart must be well-formed SVG (XML). It does not parse: {exc}."
        ) from exc
    if root.tag != f"{{{_SVG_NS}}}svg":
        raise InvalidInputError(
            f"The chart's root element must be <svg> in the namespace {_SVG_NS}. Got {root.tag!r} "
            "instead."
        )
    for node in root.iter():
        _check_node(node)
    return element


def _check_node(node: ET.Element) -> None:
    tag = node.tag.rpartition("}")[2]
    if tag in _FORBIDDEN_TAGS:
        raise InvalidInputError(
            f"A chart must not contain active content. Got a <{tag}> element; allowed are "
            "static SVG elements."
        )
    for name, value in node.attrib.items():
        local = name.rpartition("}")[2]
        if local.lower().startswith("on"):
            raise InvalidInputError(
                f"A chart must not contain event handlers. Got the attribute {local!r} on "
                f"<{tag}>; allowed are static attributes."
            )
        if "javascript:" in value.lower().replace(" ", ""):
            raise InvalidInputError(
                f"A chart must not contain script URLs. Got {value[:60]!r} in {local!r} on <{tag}>."
            )
        if _has_external_url(value):
            raise InvalidInputError(
                f"A chart must be self-contained. Got {value[:60]!r} in {local!r} on <{tag}>; "
                "allowed are in-document url(#id) references."
            )
        if (name == _XLINK_HREF or local == "href") and not value.startswith(("#", "data:image/")):
            raise InvalidInputError(
                f"A chart must be self-contained. Got the link {value[:60]!r} on <{tag}>; allowed "
                "are '#id' references and inline 'data:image/...' images."
            )
    if tag == "style" and node.text and ("@import" in node.text or _has_external_url(node.text)):
        raise InvalidInputError(
            "A chart must be self-contained. Got a <style> element that loads an external "
            "resource; allowed are in-document url(#id) references."
        )


def _has_external_url(text: str) -> bool:
    return any(not target.startswith("#") for target in _CSS_URL.findall(text))

"""Search runs with a filter language: a recursive-descent parser, its printer, and the search.

A filter compares keys of a run with literals, joined by ``and`` / ``or`` and parentheses::

    metrics.auc > 0.8 and params.lr = '0.1' and (tags.team = 'x' or tags.team = 'y')
    attributes.status = 'finished' and attributes.name LIKE 'train-%'
    experiment = 'training' and metrics.`val.auc` >= 0.75
    attributes.start_time >= '2024-05-01T00:00:00Z' and params.model IN ('lgbm', 'xgb')

Keys are ``metrics.<name>`` (the latest value, compared as a number), ``params.<name>`` and
``tags.<name>`` (strings), and ``attributes.<name>`` (or the bare name) for ``run_id``,
``name``, ``status``, ``experiment``, ``project``, ``parent_id``, ``start_time`` and
``end_time`` (times compare with quoted ISO-8601 strings). A name with dots or other characters
goes in backquotes. Operators are ``= != < <= > >= LIKE ILIKE IN``; keywords are
case-insensitive, ``and`` binds tighter than ``or``. Strings use single or double quotes with
backslash escapes (``\\'``, ``\\\\``, ``\\n``); in LIKE patterns ``%`` and ``_`` are wildcards and
``\\\\_`` is a literal underscore. The parser builds the tree of :mod:`conveyor.core.run_query`
and :func:`format_filter` prints it back, so ``parse_filter(format_filter(t)) == t``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from conveyor.core.entities import RunStatus
from conveyor.core.errors import InvalidInputError
from conveyor.core.run_query import (
    ORDERING_OPERATORS,
    PATTERN_OPERATORS,
    TIME_ATTRIBUTES,
    And,
    Attribute,
    Condition,
    Expr,
    Key,
    KeyKind,
    Operator,
    Or,
    OrderBy,
    RunPage,
    Scalar,
)
from conveyor.workspace import Workspace

__all__ = ["format_filter", "format_order_by", "parse_filter", "parse_order_by", "search_runs"]

_PREFIXES = {
    "metrics": KeyKind.METRIC,
    "metric": KeyKind.METRIC,
    "params": KeyKind.PARAM,
    "param": KeyKind.PARAM,
    "tags": KeyKind.TAG,
    "tag": KeyKind.TAG,
    "attributes": KeyKind.ATTRIBUTE,
    "attribute": KeyKind.ATTRIBUTE,
}
_SYMBOL_OPERATORS = (
    ("!=", Operator.NE),
    ("<>", Operator.NE),
    ("<=", Operator.LE),
    (">=", Operator.GE),
    ("==", Operator.EQ),
    ("=", Operator.EQ),
    ("<", Operator.LT),
    (">", Operator.GT),
)
_WORD_OPERATORS = {"like": Operator.LIKE, "ilike": Operator.ILIKE, "in": Operator.IN}
_OPERATOR_LIST = "=, !=, <, <=, >, >=, LIKE, ILIKE, IN"
_KEY_HINT = "a key such as metrics.auc, params.lr, tags.team or attributes.status"
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "`": "`"}
_PRINT_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def parse_filter(text: str) -> Expr | None:
    """Parse a filter expression; an empty or blank filter is ``None`` (every run matches).

    Raises
    ------
    InvalidInputError
        Naming the position (0-based) and what was expected, e.g. "Expected a comparison
        operator at position 12, got 'auc'."

    Examples
    --------
    >>> parse_filter("metrics.auc > 0.8").value
    0.8
    >>> format_filter(parse_filter("experiment='a' AND (tags.x = 'y' OR params.lr IN ('1'))"))
    "attributes.experiment = 'a' and (tags.x = 'y' or params.lr IN ('1'))"
    """
    parser = _Parser(text)
    if parser.at_end():
        return None
    expr = parser.disjunction()
    if not parser.at_end():
        raise parser.error("'and', 'or' or the end of the filter")
    return expr


def parse_order_by(text: str) -> tuple[OrderBy, ...]:
    """Parse sort keys such as ``"metrics.auc DESC, params.lr"`` (ascending unless DESC).

    Examples
    --------
    >>> parse_order_by("metrics.`val.auc` desc")
    (OrderBy(key=Key(kind=<KeyKind.METRIC: 'metrics'>, name='val.auc'), descending=True),)
    """
    parser = _Parser(text)
    items: list[OrderBy] = []
    while True:
        key = parser.key()
        descending = False
        if parser.keyword("desc"):
            descending = True
        else:
            parser.keyword("asc")
        items.append(OrderBy(key=key, descending=descending))
        if parser.at_end():
            return tuple(items)
        if not parser.symbol(","):
            raise parser.error("ASC, DESC, ',' or the end of the sort order")


def format_filter(expr: Expr) -> str:
    """Print a filter tree as text that :func:`parse_filter` reads back to the same tree."""
    if isinstance(expr, Condition):
        return f"{format_key(expr.key)} {expr.op.value} {_format_value(expr.value)}"
    joiner = " and " if isinstance(expr, And) else " or "
    return joiner.join(
        f"({format_filter(e)})" if isinstance(e, And | Or) else format_filter(e)
        for e in expr.operands
    )


def format_order_by(order_by: Sequence[OrderBy]) -> str:
    """Print sort keys as text that :func:`parse_order_by` reads back."""
    return ", ".join(
        format_key(item.key) + (" DESC" if item.descending else "") for item in order_by
    )


def format_key(key: Key) -> str:
    """``metrics.auc``, or ``metrics.`val.auc``` for a name that is not a plain identifier."""
    name = key.name
    plain = name.isascii() and name.isidentifier()
    return f"{key.kind.value}.{name if plain else _quote(name, '`')}"


def search_runs(
    ws: Workspace,
    filter_string: str = "",
    *,
    project: str | None = None,
    order_by: Sequence[str] = (),
    limit: int = 100,
    page_token: str | None = None,
) -> RunPage:
    """Find runs matching ``filter_string``, one page at a time.

    Parameters
    ----------
    ws : Workspace
        The workspace whose run store is searched.
    filter_string : str, optional
        A filter (see the module docstring); empty matches every run.
    project : str, optional
        Only runs of this project; all projects when None.
    order_by : sequence of str, optional
        Sort keys such as ``"metrics.auc DESC"``; newest first after them.
    limit : int, optional
        The page size, in [1, 10000].
    page_token : str, optional
        The ``next_page_token`` of the previous page of the same search.

    Returns
    -------
    RunPage
        The runs of this page and the token of the next (None on the last page).

    Raises
    ------
    InvalidInputError
        If the filter or a sort key does not parse, or the limit or token is bad.

    Examples
    --------
    >>> page = search_runs(ws, "metrics.auc > 0.8", order_by=["metrics.auc DESC"])  # doctest: +SKIP
    >>> [run.name for run in page.runs]  # doctest: +SKIP
    ['lgbm-3', 'lgbm-1']
    """
    where = parse_filter(filter_string)
    sort = tuple(item for text in order_by for item in parse_order_by(text))
    return ws.stores.runs.search_runs(
        project=project, where=where, order_by=sort, limit=limit, page_token=page_token
    )


def _format_value(value: Scalar | tuple[Scalar, ...]) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_format_value(v) for v in value) + ")"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return _quote(value.isoformat(), "'")
    return _quote(value, "'")


def _quote(text: str, quote: str) -> str:
    body = "".join(_PRINT_ESCAPES.get(c, "\\" + c if c == quote else c) for c in text)
    return f"{quote}{body}{quote}"


class _Parser:
    """Recursive descent over the characters of one filter; ``pos`` is the next character."""

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise InvalidInputError(
                f"A run filter must be a string. Got {type(text).__name__} instead."
            )
        self.text = text
        self.pos = 0

    # -- grammar ---------------------------------------------------------------------------

    def disjunction(self) -> Expr:
        operands = [self.conjunction()]
        while self.keyword("or"):
            operands.append(self.conjunction())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def conjunction(self) -> Expr:
        operands = [self.primary()]
        while self.keyword("and"):
            operands.append(self.primary())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def primary(self) -> Expr:
        if self.symbol("("):
            expr = self.disjunction()
            if not self.symbol(")"):
                raise self.error("')', 'and' or 'or'")
            return expr
        return self.condition()

    def condition(self) -> Condition:
        key = self.key()
        self.skip_space()
        op_at = self.pos
        op = self.operator()
        _check_operator(key, op, op_at)
        if op is Operator.IN:
            if not self.symbol("("):
                raise self.error("'(' to start the list of IN")
            values = [self.literal(key)]
            while self.symbol(","):
                values.append(self.literal(key))
            if not self.symbol(")"):
                raise self.error("',' or ')' in the list of IN")
            return Condition(key, op, tuple(values))
        return Condition(key, op, self.literal(key, pattern=op in PATTERN_OPERATORS))

    def key(self) -> Key:
        self.skip_space()
        start = self.pos
        word = self.word()
        if word is None:
            raise self.error(_KEY_HINT)
        lower = word.lower()
        if self.peek() == "." and lower in _PREFIXES:
            self.pos += 1
            kind = _PREFIXES[lower]
            name_at = self.pos
            name = self.name()
            if kind is not KeyKind.ATTRIBUTE:
                return Key(kind, name)
            return Key(kind, _attribute(name, name_at))
        if lower in _PREFIXES:
            raise self.error(f"'.' and a name after {word!r}")
        if lower in {a.value for a in Attribute}:
            return Key(KeyKind.ATTRIBUTE, lower)
        self.pos = start
        raise self.error(_KEY_HINT)

    def name(self) -> str:
        """Dot-separated segments, each bare (letters, digits, '_', '-') or backquoted."""
        segments = [self.segment()]
        while self.peek() == "." and self.pos + 1 < len(self.text):
            following = self.text[self.pos + 1]
            if following != "`" and following not in _NAME_CHARS:
                break
            self.pos += 1
            segments.append(self.segment())
        return ".".join(segments)

    def segment(self) -> str:
        if self.peek() == "`":
            start = self.pos
            text = self.quoted("`")
            if not text:
                self.pos = start
                raise self.error("a non-empty name between backquotes")
            return text
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _NAME_CHARS:
            self.pos += 1
        if self.pos == start:
            raise self.error("a name (letters, digits, '_', '-', or any text in backquotes)")
        return self.text[start : self.pos]

    def operator(self) -> Operator:
        self.skip_space()
        for symbol, op in _SYMBOL_OPERATORS:
            if self.text.startswith(symbol, self.pos):
                self.pos += len(symbol)
                return op
        start = self.pos
        word = self.word()
        if word is not None and word.lower() in _WORD_OPERATORS:
            return _WORD_OPERATORS[word.lower()]
        self.pos = start
        raise self.error("a comparison operator", hint=f" Operators are {_OPERATOR_LIST}.")

    def literal(self, key: Key, *, pattern: bool = False) -> Scalar:
        self.skip_space()
        start = self.pos
        char = self.peek()
        value: Scalar
        if char in ("'", '"'):
            value = self.quoted(char)
        elif char and (char.isdigit() or char in "+-."):
            value = self.number()
        else:
            raise self.error("a value (a number or a quoted string)")
        return _check_literal(key, value, start, self, pattern=pattern)

    def number(self) -> float:
        start = self.pos
        if self.peek() in ("+", "-"):
            self.pos += 1
        digits = self.digits()
        if self.peek() == ".":
            self.pos += 1
            digits += self.digits()
        if digits == 0:
            self.pos = start
            raise self.error("a number")
        if self.peek() in ("e", "E"):
            mark = self.pos
            self.pos += 1
            if self.peek() in ("+", "-"):
                self.pos += 1
            if self.digits() == 0:
                self.pos = mark
                raise self.error("the digits of an exponent")
        if self.peek() in _NAME_CHARS:
            raise self.error("an operator, 'and', 'or', ')' or the end after a number")
        return float(self.text[start : self.pos])

    def digits(self) -> int:
        start = self.pos
        while self.peek().isdigit() and self.peek().isascii():
            self.pos += 1
        return self.pos - start

    def quoted(self, quote: str) -> str:
        """A string between ``quote`` characters with backslash escapes or a doubled quote."""
        start = self.pos
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                following = self.text[self.pos + 1]
                # An unknown escape keeps its backslash, so LIKE patterns can escape % and _.
                out.append(_ESCAPES.get(following, "\\" + following))
                self.pos += 2
            elif char == quote and self.text.startswith(quote * 2, self.pos):
                out.append(quote)
                self.pos += 2
            elif char == quote:
                self.pos += 1
                return "".join(out)
            else:
                out.append(char)
                self.pos += 1
        self.pos = len(self.text)
        raise self.error(
            f"a closing {quote}", hint=f" The text opened at position {start} is never closed."
        )

    # -- scanning --------------------------------------------------------------------------

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        self.skip_space()
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def word(self) -> str | None:
        """An identifier (ASCII letter or '_', then letters, digits, '_') at ``pos``, if any."""
        start = self.pos
        char = self.peek()
        if not (char.isascii() and (char.isalpha() or char == "_")):
            return None
        while self.pos < len(self.text) and _is_word_char(self.text[self.pos]):
            self.pos += 1
        return self.text[start : self.pos]

    def keyword(self, word: str) -> bool:
        self.skip_space()
        end = self.pos + len(word)
        if self.text[self.pos : end].lower() != word:
            return False
        if end < len(self.text) and _is_word_char(self.text[end]):
            return False
        self.pos = end
        return True

    def symbol(self, symbol: str) -> bool:
        self.skip_space()
        if self.text.startswith(symbol, self.pos):
            self.pos += len(symbol)
            return True
        return False

    def error(self, expected: str, *, at: int | None = None, hint: str = "") -> InvalidInputError:
        position = self.pos if at is None else at
        return InvalidInputError(
            f"Expected {expected} at position {position}, got {self._found(position)}.{hint}"
        )

    def _found(self, position: int) -> str:
        rest = self.text[position:].lstrip()
        if not rest:
            return "the end of the filter"
        end = 1
        if rest[0].isdigit():
            while end < len(rest) and rest[end] in "0123456789.eE+-":
                end += 1
        elif _is_word_char(rest[0]):
            while end < len(rest) and _is_word_char(rest[end]):
                end += 1
        elif not rest[0].isspace():
            while end < len(rest) and end < 20 and not rest[end].isspace():
                end += 1
        return repr(rest[:end])


def _is_word_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "_")


def _attribute(name: str, position: int) -> str:
    if name.lower() in {a.value for a in Attribute}:
        return name.lower()
    allowed = ", ".join(a.value for a in Attribute)
    raise InvalidInputError(
        f"Expected an attribute ({allowed}) at position {position}, got {name!r}."
    )


def _check_operator(key: Key, op: Operator, position: int) -> None:
    numeric = key.kind is KeyKind.METRIC or key.name in TIME_ATTRIBUTES
    if numeric and op in PATTERN_OPERATORS:
        raise InvalidInputError(
            f"{format_key(key)} is compared by value; {op.value} (at position {position}) "
            f"only works on params, tags and text attributes."
        )
    if not numeric and op in ORDERING_OPERATORS:
        raise InvalidInputError(
            f"{format_key(key)} is a string; use =, !=, LIKE, ILIKE or IN, not {op.value} (at "
            f"position {position})."
        )
    if key.name in TIME_ATTRIBUTES and key.kind is KeyKind.ATTRIBUTE and op is Operator.IN:
        raise InvalidInputError(
            f"{format_key(key)} is a time; compare it with =, !=, <, <=, > or >=, not IN (at "
            f"position {position})."
        )


def _check_literal(
    key: Key, value: Scalar, position: int, parser: _Parser, *, pattern: bool
) -> Scalar:
    """The literal as the tree holds it: floats for metrics, UTC datetimes for times."""
    if key.kind is KeyKind.METRIC:
        if not isinstance(value, float):
            raise parser.error(f"a number to compare {format_key(key)} with", at=position)
        return value
    if isinstance(value, float):
        raise parser.error(
            f"a quoted string to compare {format_key(key)} with (params, tags and attributes "
            f"are text: write '0.1', not 0.1)",
            at=position,
        )
    assert isinstance(value, str)
    if key.kind is KeyKind.ATTRIBUTE and key.name in TIME_ATTRIBUTES:
        return _parse_time(key, value, position)
    if key.kind is KeyKind.ATTRIBUTE and key.name == Attribute.STATUS and not pattern:
        statuses = [s.value for s in RunStatus]
        if value.lower() not in statuses:
            raise InvalidInputError(
                f"Expected a run status ({', '.join(statuses)}) at position {position}, "
                f"got {value!r}."
            )
        return value.lower()
    return value


def _parse_time(key: Key, value: str, position: int) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInputError(
            f"Expected an ISO-8601 time such as '2024-05-01T12:00:00Z' to compare "
            f"{format_key(key)} with at position {position}, got {value!r}."
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)

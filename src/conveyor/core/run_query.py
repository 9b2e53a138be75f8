"""Run search queries as data: the filter tree, the sort keys, a page of results and its token.

The parser that builds these from text lives in :mod:`conveyor.tracking.search`; the SQL
adapter compiles them to bound-parameter queries. Keeping the tree here lets the store port
speak it without knowing any syntax.

A filter is a tree of :class:`Condition` leaves joined by :class:`And` and :class:`Or` nodes.
Every condition compares one :class:`Key` of a run with a literal; a run that lacks the key
(no such metric, param or tag) never matches, whatever the operator.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import orjson

from conveyor.core.entities import Run
from conveyor.core.errors import InvalidInputError


class KeyKind(StrEnum):
    """What a key names: a metric's latest value, a param, a tag or an attribute of the run."""

    METRIC = "metrics"
    PARAM = "params"
    TAG = "tags"
    ATTRIBUTE = "attributes"


class Attribute(StrEnum):
    """The attributes of a run a filter or a sort may use."""

    RUN_ID = "run_id"
    NAME = "name"
    STATUS = "status"
    EXPERIMENT = "experiment"
    PROJECT = "project"
    PARENT_ID = "parent_id"
    START_TIME = "start_time"
    END_TIME = "end_time"


TIME_ATTRIBUTES = frozenset({Attribute.START_TIME, Attribute.END_TIME})


class Operator(StrEnum):
    """Comparison operators, spelled as in a filter."""

    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    LIKE = "LIKE"
    ILIKE = "ILIKE"
    IN = "IN"


ORDERING_OPERATORS = frozenset({Operator.LT, Operator.LE, Operator.GT, Operator.GE})
PATTERN_OPERATORS = frozenset({Operator.LIKE, Operator.ILIKE})

Scalar = str | float | datetime
"""A literal: a number for metrics, an aware UTC datetime for times, a string otherwise."""


@dataclass(frozen=True, slots=True)
class Key:
    """A key of a run, such as ``metrics.auc`` or ``attributes.status``."""

    kind: KeyKind
    name: str


@dataclass(frozen=True, slots=True)
class Condition:
    """``key op value``; for ``IN`` the value is a non-empty tuple of literals."""

    key: Key
    op: Operator
    value: Scalar | tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class And:
    """True when every operand is (two or more operands)."""

    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """True when any operand is (two or more operands)."""

    operands: tuple[Expr, ...]


Expr = Condition | And | Or


@dataclass(frozen=True, slots=True)
class OrderBy:
    """One sort key; runs lacking a metric, param or tag sort last in either direction."""

    key: Key
    descending: bool = False


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of search results and the token of the next page (None on the last page)."""

    runs: tuple[Run, ...]
    next_page_token: str | None = None


MAX_PAGE_SIZE = 10_000


def query_fingerprint(project: str | None, where: Expr | None, order_by: Sequence[OrderBy]) -> str:
    """A short digest of a query, so a page token is only accepted by the query it came from."""
    text = repr((project, where, tuple(order_by)))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_page_token(offset: int, fingerprint: str) -> str:
    """An opaque token for the page starting at ``offset`` of the query ``fingerprint``."""
    payload = orjson.dumps({"offset": offset, "query": fingerprint})
    return base64.urlsafe_b64encode(payload).decode("ascii")


def decode_page_token(token: str, fingerprint: str) -> int:
    """The offset a token stands for.

    Raises
    ------
    InvalidInputError
        If the token is malformed or was issued for a different query.
    """
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        offset, issued_for = payload["offset"], payload["query"]
    except (ValueError, TypeError, KeyError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise InvalidInputError(
            f"The page token {token!r} is not one a run search returned; pass the "
            f"next_page_token of the previous page unchanged."
        ) from exc
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidInputError(f"The page token {token!r} holds a bad offset {offset!r}.")
    if issued_for != fingerprint:
        raise InvalidInputError(
            f"The page token {token!r} belongs to a different search; repeat the same filter, "
            f"order and project to read the next page."
        )
    return offset


def check_page_size(limit: int) -> None:
    """Raise InvalidInputError unless ``limit`` is an int in [1, MAX_PAGE_SIZE]."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInputError(
            f"The 'limit' parameter of search_runs() must be an int in [1, {MAX_PAGE_SIZE}]. "
            f"Got {limit!r} instead."
        )

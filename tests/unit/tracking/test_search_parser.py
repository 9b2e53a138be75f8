"""The run filter language: parse trees, precedence, literals, errors and the printer round trip."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.core.errors import InvalidInputError
from conveyor.core.run_query import (
    And,
    Attribute,
    Condition,
    Expr,
    Key,
    KeyKind,
    Operator,
    Or,
    OrderBy,
)
from conveyor.tracking.search import format_filter, format_order_by, parse_filter, parse_order_by

AUC = Key(KeyKind.METRIC, "auc")
LR = Key(KeyKind.PARAM, "lr")
TEAM = Key(KeyKind.TAG, "team")


def test_conjunction_of_metric_param_and_tag() -> None:
    tree = parse_filter("metrics.auc > 0.8 and params.lr = '0.1' and tags.team = 'x'")
    assert tree == And(
        (
            Condition(AUC, Operator.GT, 0.8),
            Condition(LR, Operator.EQ, "0.1"),
            Condition(TEAM, Operator.EQ, "x"),
        )
    )


def test_and_binds_tighter_than_or_and_parentheses_override() -> None:
    a, b, c = (f"tags.t = '{v}'" for v in "abc")
    leaf = {v: Condition(Key(KeyKind.TAG, "t"), Operator.EQ, v) for v in "abc"}
    assert parse_filter(f"{a} or {b} and {c}") == Or((leaf["a"], And((leaf["b"], leaf["c"]))))
    assert parse_filter(f"({a} or {b}) and {c}") == And((Or((leaf["a"], leaf["b"])), leaf["c"]))
    assert parse_filter(f"(({a}))") == leaf["a"]


def test_keywords_and_prefixes_are_case_insensitive() -> None:
    tree = parse_filter("Metric.auc >= 1 AND Tag.team ILIKE 'X%' Or PARAMS.lr in ('1', '2')")
    assert tree == Or(
        (
            And((Condition(AUC, Operator.GE, 1.0), Condition(TEAM, Operator.ILIKE, "X%"))),
            Condition(LR, Operator.IN, ("1", "2")),
        )
    )


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("attributes.status = 'FINISHED'", Attribute.STATUS, "finished"),
        ("experiment = 'training'", Attribute.EXPERIMENT, "training"),
        ("attributes.name LIKE 'train-%'", Attribute.NAME, "train-%"),
        ("run_id = 'abc'", Attribute.RUN_ID, "abc"),
    ],
)
def test_attributes_with_or_without_prefix(text: str, key: Attribute, value: str) -> None:
    tree = parse_filter(text)
    assert isinstance(tree, Condition)
    assert tree.key == Key(KeyKind.ATTRIBUTE, key.value) and tree.value == value


def test_time_attributes_take_iso_strings_as_utc() -> None:
    tree = parse_filter("attributes.start_time >= '2024-05-01T14:00:00+02:00'")
    assert isinstance(tree, Condition)
    assert tree.value == datetime(2024, 5, 1, 12, tzinfo=UTC)
    naive = parse_filter("attributes.end_time < '2024-05-01'")
    assert isinstance(naive, Condition) and naive.value == datetime(2024, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("literal", "value"),
    [("0.8", 0.8), ("-2", -2.0), ("+3.5", 3.5), ("1e-3", 0.001), ("2.5E+2", 250.0), (".5", 0.5)],
)
def test_numeric_literals(literal: str, value: float) -> None:
    tree = parse_filter(f"metrics.auc < {literal}")
    assert isinstance(tree, Condition) and tree.value == value


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r"'it\'s'", "it's"),
        ("'it''s'", "it's"),
        (r'"say \"hi\""', 'say "hi"'),
        (r"'a\\b'", "a\\b"),
        (r"'line\nbreak'", "line\nbreak"),
        (r"'100\%'", "100\\%"),  # unknown escapes keep the backslash for LIKE
        ("'x'' OR 1=1 --'", "x' OR 1=1 --"),
    ],
)
def test_string_literals_and_escapes(literal: str, value: str) -> None:
    tree = parse_filter(f"tags.note = {literal}")
    assert isinstance(tree, Condition) and tree.value == value


def test_backquoted_and_dotted_names() -> None:
    expected = Condition(Key(KeyKind.METRIC, "val.auc"), Operator.GT, 0.5)
    assert parse_filter("metrics.`val.auc` > 0.5") == expected
    assert parse_filter("metrics.val.auc > 0.5") == expected
    spaced = parse_filter("params.`learning rate` = '0.1'")
    assert isinstance(spaced, Condition) and spaced.key.name == "learning rate"
    assert parse_filter(r"tags.`a\`b` = 'x'") == Condition(
        Key(KeyKind.TAG, "a`b"), Operator.EQ, "x"
    )


def test_blank_filter_matches_everything() -> None:
    assert parse_filter("") is None
    assert parse_filter("   \n") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metrics.auc auc", r"^Expected a comparison operator at position 12, got 'auc'\."),
        ("auc > 0.8", r"Expected a key such as metrics\.auc.* at position 0, got 'auc'"),
        ("metrics.auc > 0.8 and", r"Expected a key .* at position 21, got the end of the filter"),
        ("metrics.auc > 0.8 params.lr = '1'", r"Expected 'and', 'or' .* at position 18"),
        ("(metrics.auc > 0.8", r"Expected '\)', 'and' or 'or' at position 18"),
        ("metrics.auc > 'high'", r"Expected a number to compare metrics\.auc with at position 14"),
        ("params.lr = 0.1", r"Expected a quoted string .* at position 12, got '0\.1'"),
        ("params.lr > '0.1'", r"params\.lr is a string; use =, !=, LIKE, ILIKE or IN, not >"),
        ("metrics.auc LIKE '0.%'", r"metrics\.auc is compared by value; LIKE \(at position 12\)"),
        ("tags.a = 'open", r"Expected a closing ' at position 14.*opened at position 9"),
        (
            "attributes.colour = 'red'",
            r"Expected an attribute \(run_id, .*position 11, got 'colour'",
        ),
        ("status = 'done'", r"Expected a run status \(running, finished, failed\) at position 9"),
        ("metrics. > 1", r"Expected a name .* at position 8"),
        ("metrics = 1", r"Expected '\.' and a name after 'metrics' at position 7, got '='"),
        ("tags.a IN 'x'", r"Expected '\(' to start the list of IN at position 10"),
        ("tags.a IN ('x' 'y')", r"Expected ',' or '\)' in the list of IN at position 15"),
        ("metrics.a > 1x", r"at position 13"),
        ("start_time > 'yesterday'", r"Expected an ISO-8601 time .* got 'yesterday'"),
        ("tags.`` = 'x'", r"Expected a non-empty name between backquotes at position 5"),
    ],
)
def test_errors_name_the_position_and_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_filter(text)


def test_order_by_parses_directions_and_lists() -> None:
    assert parse_order_by("metrics.auc DESC, params.y, attributes.start_time asc") == (
        OrderBy(AUC, descending=True),
        OrderBy(Key(KeyKind.PARAM, "y")),
        OrderBy(Key(KeyKind.ATTRIBUTE, "start_time")),
    )
    with pytest.raises(
        InvalidInputError, match="Expected ASC, DESC, ',' or the end .* position 12"
    ):
        parse_order_by("metrics.auc sideways")


# -- printing a random tree and parsing it gives the same tree -----------------------------------

_names = st.one_of(
    st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
    st.text(min_size=1, max_size=10).filter(lambda s: "\x00" not in s),
)
_texts = st.text(max_size=12)
_numbers = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def _conditions(draw: st.DrawFn) -> Condition:
    kind = draw(st.sampled_from(list(KeyKind)))
    if kind is KeyKind.METRIC:
        op = draw(
            st.sampled_from([Operator.EQ, Operator.NE, Operator.LT, Operator.GE, Operator.IN])
        )
        key = Key(kind, draw(_names))
        values = _numbers
    elif kind is KeyKind.ATTRIBUTE:
        name = draw(st.sampled_from(["name", "experiment", "status", "start_time"]))
        key = Key(kind, name)
        if name == "start_time":
            moment = draw(st.datetimes(timezones=st.just(UTC)))
            return Condition(key, draw(st.sampled_from([Operator.LE, Operator.GT])), moment)
        if name == "status":
            return Condition(key, Operator.EQ, draw(st.sampled_from(["running", "finished"])))
        op = draw(st.sampled_from([Operator.EQ, Operator.LIKE, Operator.IN]))
        values = _texts
    else:
        key = Key(kind, draw(_names))
        op = draw(st.sampled_from([Operator.EQ, Operator.NE, Operator.ILIKE, Operator.IN]))
        values = _texts
    if op is Operator.IN:
        return Condition(key, op, tuple(draw(st.lists(values, min_size=1, max_size=3))))
    return Condition(key, op, draw(values))


_trees: st.SearchStrategy[Expr] = st.recursive(
    _conditions(),
    lambda children: st.one_of(
        st.lists(children, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(_trees)
def test_printing_a_random_tree_then_parsing_gives_the_same_tree(tree: Expr) -> None:
    assert parse_filter(format_filter(tree)) == tree


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(_names, st.booleans()), min_size=1, max_size=3))
def test_printing_sort_keys_then_parsing_gives_the_same_keys(items: list[tuple[str, bool]]) -> None:
    order = tuple(OrderBy(Key(KeyKind.METRIC, n), descending=d) for n, d in items)
    assert parse_order_by(format_order_by(order)) == order

"""Request body parsing, bind and CORS rules shared by the servers."""

from __future__ import annotations

import pytest

from conveyor.core.errors import ConfigError
from conveyor.core.hosts import check_bind, check_origins, trusted_hosts
from conveyor.serving.guards import BodyError, parse_json_body
from conveyor.spec import parse_spec


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b'{"a": 1, "a": 2}', "a"),
        (b'{"a" : 1, "b": {"c": 1, "c" :2}}', "c"),
        (b'[{"x": 1}, {"x": 1, "y": 2, "x": 3}]', "x"),
        (b'{"a":1,\n"a"\n:2}', "a"),
    ],
)
def test_duplicate_keys_are_refused_naming_the_key(body: bytes, key: str) -> None:
    with pytest.raises(BodyError) as info:
        parse_json_body(body, max_string_chars=100)
    assert info.value.status == 422 and info.value.errors[0]["field"] == key


def test_key_lookalikes_inside_strings_are_not_duplicates() -> None:
    body = b'{"a": "\\"a\\": 1", "b" : "x\\":"}'
    assert parse_json_body(body, max_string_chars=100) == {"a": '"a": 1', "b": 'x":'}


def test_long_strings_and_keys_are_refused_naming_where() -> None:
    with pytest.raises(BodyError) as info:
        parse_json_body(b'{"r": [{"c": "ok"}, {"c": "xxxxxx"}]}', max_string_chars=5)
    assert info.value.status == 422 and info.value.errors[0]["field"] == "r[1].c"
    with pytest.raises(BodyError):
        parse_json_body(b'{"kkkkkkkk": 1}', max_string_chars=5)
    with pytest.raises(BodyError) as bad:
        parse_json_body(b"{nope", max_string_chars=5)
    assert bad.value.status == 400


def test_a_reachable_address_needs_a_token_or_an_explicit_insecure_flag() -> None:
    assert check_bind("127.0.0.1", has_token=False) is False
    assert check_bind("0.0.0.0", has_token=True) is False
    with pytest.raises(ConfigError, match="0.0.0.0"):
        check_bind("0.0.0.0", has_token=False)
    assert check_bind("0.0.0.0", has_token=False, insecure=True) is True
    assert trusted_hosts("10.0.0.5", ["a.example"])[-2:] == ["10.0.0.5", "a.example"]


@pytest.mark.parametrize("origin", ["*", "app.example.com", "https://a.example/path", "null"])
def test_cors_origins_must_be_explicit(origin: str) -> None:
    with pytest.raises(ConfigError):
        check_origins([origin])
    with pytest.raises(ConfigError, match="cors_origins"):
        parse_spec({"project": "p", "task": "binary", "label": "y",
                    "serving": {"cors_origins": [origin]}})  # fmt: skip

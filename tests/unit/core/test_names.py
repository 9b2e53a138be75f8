"""The one rule for names: NFC, case-insensitive key, no surrounding whitespace, a length and
character limit; artifact names stay relative paths."""

from __future__ import annotations

import unicodedata

import pytest

from conveyor.core.errors import InvalidInputError
from conveyor.core.names import (
    MAX_ARTIFACT_NAME_LENGTH,
    MAX_NAME_LENGTH,
    NameKind,
    check_artifact_name,
    check_name,
    check_run_artifact_name,
    name_key,
)

NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")


def test_check_name_puts_names_in_nfc() -> None:
    assert NFC != NFD
    assert check_name(NFD, NameKind.MODEL) == NFC
    assert check_name(NFC, NameKind.MODEL) == NFC


def test_name_key_is_one_key_for_case_and_normal_forms() -> None:
    assert name_key("Model") == name_key("MODEL") == name_key("model")
    assert name_key(NFD.upper()) == name_key(NFC)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "non-empty"),
        ("model ", "whitespace"),
        (" model", "whitespace"),
        ("model\t", "whitespace"),
        pytest.param("x" * (MAX_NAME_LENGTH + 1), f"at most {MAX_NAME_LENGTH}", id="too-long"),
        pytest.param("x" * 10_000, f"at most {MAX_NAME_LENGTH}", id="10000-chars"),
        ("a/b", "'/'"),
        ("a\\b", "'\\\\'"),
        ("a\x00b", "U+0000"),
        ("a%2fb", "'%'"),
        ("a?b", "'?'"),
        ("a#b", "'#'"),
        ("a\u200bb", "U+200B"),
    ],
)
def test_check_name_refuses_with_the_kind_and_the_problem(name: str, fragment: str) -> None:
    with pytest.raises(InvalidInputError, match="The experiment name") as info:
        check_name(name, NameKind.EXPERIMENT)
    assert fragment in str(info.value)


def test_check_name_refuses_a_non_string() -> None:
    with pytest.raises(InvalidInputError, match="The run name must be a non-empty string"):
        check_name(3, NameKind.RUN)


@pytest.mark.parametrize(
    "name", ["flights", "train-52", "study-hpo_1", "Größe", "模型", "a b.c:d@e+f=(g)[h],i*j!k~l&m"]
)
def test_check_name_keeps_ordinary_names(name: str) -> None:
    assert check_name(name, NameKind.PROJECT) == name


def test_artifact_names_are_nfc_bounded_and_keep_a_directory_slash() -> None:
    assert check_artifact_name(f"plots/{NFD}.png") == f"plots/{NFC}.png"
    assert check_run_artifact_name("model/") == "model/"
    with pytest.raises(InvalidInputError, match=f"at most {MAX_ARTIFACT_NAME_LENGTH}"):
        check_artifact_name("a" * (MAX_ARTIFACT_NAME_LENGTH + 1))
    for bad in ("../../x", "/etc/passwd", "a\x00b", "C:/x"):
        with pytest.raises(InvalidInputError, match="artifact name"):
            check_run_artifact_name(bad)

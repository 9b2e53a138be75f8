"""The label codec: any two values as a binary label, any set as a multiclass one."""

from __future__ import annotations

import numpy as np
import pytest

from conveyor.core.errors import InvalidInputError
from conveyor.core.labels import LabelCodec, Task
from conveyor.core.schema import ColumnKind, ColumnSchema
from conveyor.core.signature import Signature


def test_text_binary_label_takes_the_value_named_positive() -> None:
    codec = LabelCodec.fit("binary", ["no", "yes", "no", "no"])
    assert codec.classes == ("no", "yes")
    assert codec.encode(["yes", "no"]).tolist() == [1.0, 0.0]


def test_without_a_positive_name_the_rarer_value_is_positive() -> None:
    codec = LabelCodec.fit(Task.BINARY, ["good", "bad", "good", "good"])
    assert codec.positive == "bad"


def test_a_declared_positive_class_wins() -> None:
    codec = LabelCodec.fit("binary", ["No", "Yes", "No"], positive="No")
    assert codec.classes == ("Yes", "No")
    with pytest.raises(InvalidInputError, match="'maybe' is not a value"):
        LabelCodec.fit("binary", ["No", "Yes"], positive="maybe")


def test_numbers_booleans_and_their_text_are_one_class() -> None:
    codec = LabelCodec.fit("binary", [0, 1, 1])
    assert codec.encode([True, "0", 1.0, np.int64(1)]).tolist() == [1.0, 0.0, 1.0, 1.0]


def test_a_binary_label_needs_two_values() -> None:
    with pytest.raises(InvalidInputError, match="exactly two values. Got 3"):
        LabelCodec.fit("binary", ["a", "b", "c"])


def test_multiclass_codes_follow_sorted_classes_and_unknown_classes_are_named() -> None:
    codec = LabelCodec.fit("multiclass", ["sun", "rain", "fog", "sun", None])
    assert codec.classes == ("fog", "rain", "sun")
    assert codec.encode(["sun", "fog"]).tolist() == [2.0, 0.0]
    assert codec.decode([1, 2]) == ["rain", "sun"]
    with pytest.raises(InvalidInputError, match="'snow' is not a class"):
        codec.encode(["snow"])


def test_regression_values_must_be_finite_numbers() -> None:
    codec = LabelCodec.fit("regression", [1.5, 2.0])
    assert codec.encode(["3", 4]).tolist() == [3.0, 4.0]
    with pytest.raises(InvalidInputError, match="must be a number. Got 'many'"):
        codec.encode([1, "many"])
    with pytest.raises(InvalidInputError, match="must not be missing"):
        codec.encode([1, None])


def test_signature_round_trips_its_classes_and_old_binary_signatures_score_one() -> None:
    inputs = (ColumnSchema("x", ColumnKind.NUMERIC),)
    sig = Signature(inputs, task="multiclass", classes=("a", "b", "c"))
    assert Signature.from_dict(sig.to_dict()) == sig
    assert Signature(inputs).labels.classes == (0, 1)
    assert "classes" not in Signature(inputs).to_dict()

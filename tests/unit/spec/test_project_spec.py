"""conveyor.yaml is validated with errors that name the field, the value and what is allowed."""

from __future__ import annotations

import pytest

from conveyor.core.errors import ConfigError, NotFoundError
from conveyor.spec import load_spec, parse_spec

BASE = {"project": "p", "task": "binary", "label": "y"}


def test_minimal_spec_gets_defaults():
    spec = parse_spec(BASE)
    assert spec.training.window_batches == 8 and spec.serving.host == "127.0.0.1"
    assert parse_spec(spec.model_dump(mode="json")) == spec


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"task": "clasification"}, "'task' must be one of 'binary', 'multiclass' or 'regression'"),
        ({"serving": {"port": 0}}, "'serving.port'"),
        ({"gate": {"margin": -1}}, "'gate.margin'"),
        ({"training": {"split": [0.5, 0.5, 0.5]}}, "'training.split'"),
        ({"colour": "red"}, "'colour' is not a known field"),
        ({"project": "../etc"}, "'project'"),
    ],
)
def test_bad_fields_are_named(patch, needle):
    with pytest.raises(ConfigError, match="conveyor.yaml") as info:
        parse_spec({**BASE, **patch})
    assert needle in str(info.value)


def test_missing_required_field_is_named():
    with pytest.raises(ConfigError, match="'label' is required"):
        parse_spec({"project": "p", "task": "binary"})


def test_load_spec_reports_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(NotFoundError, match="No project spec"):
        load_spec(tmp_path / "conveyor.yaml")
    bad = tmp_path / "conveyor.yaml"
    bad.write_text("project: [x\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_spec(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_spec(bad)

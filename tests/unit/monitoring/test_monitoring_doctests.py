"""The examples in the monitoring and alerting modules' docstrings run and hold."""

from __future__ import annotations

import doctest

import pytest

from conveyor.alerting import links, sinks
from conveyor.monitoring import cbpe, jobs, scrape


@pytest.mark.parametrize("module", [cbpe, jobs, links, scrape, sinks], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0

"""The examples in the monitoring modules' docstrings run and hold."""

from __future__ import annotations

import doctest

import pytest

from conveyor.monitoring import cbpe, jobs, links, scrape, sinks


@pytest.mark.parametrize("module", [cbpe, jobs, links, scrape, sinks], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0

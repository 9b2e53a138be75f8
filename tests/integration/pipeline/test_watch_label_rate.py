"""The post-release watch adapts to the label rate: when releases receive few labels, it judges
a release on about half the labels its predecessors received, not on a fixed 500 that a
release never reaches before it is replaced; a clearly bad release is still rolled back."""

from __future__ import annotations

import pytest
from tests.integration.conftest import SPEC, make_batch

from conveyor.pipeline.cycle import run_cycle
from conveyor.pipeline.watch import WatchStatus, watch_release
from conveyor.registry.service import PRODUCTION, find_alias_version, promote
from conveyor.spec import parse_spec

from .test_watch_sequences import _bad, _good
from .traffic import serve_and_label

#: Labelled requests a release receives in its life: far fewer than the 500 the watch used to
#: wait for.
SCARCE = 240


@pytest.fixture
def spec():
    return parse_spec({**SPEC, "watch": {}})  # min_labels unset: adapted to the label rate


def _two_releases_served(ws, spec) -> int:
    """v1 from a cycle and a good v2 released over it, each serving ``SCARCE`` labels."""
    run_cycle(ws, spec, sources=[make_batch(0), make_batch(1)])
    first = find_alias_version(ws, "toy", PRODUCTION)
    assert first is not None
    serve_and_label(ws, spec, make_batch(5, rows=SCARCE), first)
    good = _good(ws, spec)
    promote(ws, "toy", good, reason="a good release")
    serve_and_label(ws, spec, make_batch(6, rows=SCARCE), good)
    healthy = watch_release(ws, spec)
    assert healthy.status is WatchStatus.HEALTHY and healthy.evidence is not None
    assert healthy.evidence["need"] == {"labels": 120, "adaptive": True, "per_release": [SCARCE]}
    return good


@pytest.mark.slow
def test_a_bad_release_is_rolled_back_on_few_labels(ws, spec):
    good = _two_releases_served(ws, spec)
    bad = _bad(ws, spec, seed=11)
    promote(ws, "toy", bad, reason="forced bad release")
    serve_and_label(ws, spec, make_batch(7, rows=100), bad)
    waiting = watch_release(ws, spec)
    assert waiting.status is WatchStatus.WAITING and waiting.evidence is not None
    assert waiting.evidence["labels"] == 100 and waiting.evidence["need"]["labels"] == 120

    serve_and_label(ws, spec, make_batch(8, rows=60), bad)
    outcome = watch_release(ws, spec)
    assert (outcome.status, outcome.moved_to) == (WatchStatus.ROLLED_BACK, good)
    assert outcome.evidence is not None and outcome.evidence["labels"] == 160
    low, high = outcome.evidence["interval"]
    assert low < high < 0  # the interval the decision was taken on, reported
    assert outcome.evidence["need"]["per_release"] == [SCARCE, SCARCE]


@pytest.mark.slow
def test_two_bad_releases_in_a_row_with_scarce_labels_each_go_back(ws, spec):
    good = _two_releases_served(ws, spec)
    for seed, week in ((12, 7), (13, 8)):
        bad = _bad(ws, spec, seed=seed)
        promote(ws, "toy", bad, reason="forced bad release")
        serve_and_label(ws, spec, make_batch(week, rows=150), bad)
        outcome = watch_release(ws, spec)
        assert (outcome.status, outcome.version, outcome.moved_to) == (
            WatchStatus.ROLLED_BACK,
            bad,
            good,
        )
        assert find_alias_version(ws, "toy", PRODUCTION) == good
    # The second judgement read the first bad release's 150 labels and the restored version's
    # empty stay: half their median is under the floor, which is the need.
    assert outcome.evidence is not None
    assert outcome.evidence["need"] == {
        "labels": 100,
        "adaptive": True,
        "per_release": [SCARCE, SCARCE, 150, 0],
    }

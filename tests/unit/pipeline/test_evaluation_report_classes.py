"""The evaluation report of a multiclass version draws its k x k confusion matrix."""

from __future__ import annotations

from tests.unit.pipeline.test_evaluation_report import _evidence

from conveyor.pipeline.evaluation_report import build_evaluation_report


def test_a_multiclass_report_draws_every_class_and_no_residuals():
    evidence = _evidence("binary")
    challenger = evidence["evaluation"]["challenger"]
    challenger.update(
        task="multiclass",
        confusion=[[50, 3, 1], [4, 40, 2], [0, 5, 45]],
        errors=[{"label": 1, "rows": 46, "errors": 6}],
    )
    html = build_evaluation_report(evidence).render()
    for code in range(3):
        assert f"true {code}" in html and f"predicted {code}" in html
    assert "Residuals" not in html

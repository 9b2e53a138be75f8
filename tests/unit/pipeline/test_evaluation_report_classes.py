"""The evaluation report of a multiclass version draws its k x k confusion matrix by class."""

from __future__ import annotations

from tests.unit.pipeline.test_evaluation_report import _evidence

from conveyor.pipeline.evaluation_report import build_evaluation_report


def test_a_multiclass_report_names_its_classes_and_draws_no_residuals():
    evidence = _evidence("binary")
    challenger = evidence["evaluation"]["challenger"]
    challenger.update(
        task="multiclass",
        classes=["bream", "perch", "pike"],
        confusion=[[50, 3, 1], [4, 40, 2], [0, 5, 45]],
        errors=[{"label": "perch", "rows": 46, "errors": 6}],
    )
    html = build_evaluation_report(evidence).render()
    for name in ("bream", "perch", "pike"):
        assert f"true {name}" in html and f"predicted {name}" in html
    assert "Residuals" not in html and "true 0" not in html

"""Answer rules: the contract's status rule and the networks' body refusals."""

from __future__ import annotations

import pytest

from gateway.sources import answers, catalog
from gateway.verdict import Verdict


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"),
        (204, "delivered"),
        (408, "retry"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
        (400, "rejected"),
        (404, "rejected"),
        (301, "rejected"),
    ],
)
def test_status_rule_without_body_rule(status: int, outcome: str) -> None:
    assert answers.compile_answer_rule({}).classify(status, "").outcome == outcome


def test_exoclick_error_body_is_rejected_with_the_networks_message() -> None:
    verdict = answers.classify("exoclick", 200, "ERROR: tag invalid\n")
    assert verdict.outcome == "rejected"
    assert verdict.reason == "ERROR: tag invalid"
    assert answers.classify("exoclick", 200, "OK").outcome == "delivered"


def test_body_rule_does_not_hide_a_retry() -> None:
    assert answers.classify("exoclick", 503, "ERROR: busy").outcome == "retry"


def test_json_rule() -> None:
    rule = answers.compile_answer_rule(
        {"json_field": "status", "json_error": "error", "json_message": "message"}
    )
    verdict = rule.classify(200, '{"status":"error","message":"Incorrect click_id value"}')
    assert verdict == Verdict("rejected", "Incorrect click_id value")
    assert rule.classify(200, '{"status":"ok"}').outcome == "delivered"
    assert rule.classify(200, "not json {").outcome == "delivered"
    assert rule.classify(200, "[1, 2]").outcome == "delivered"


def test_json_rule_with_boolean_field() -> None:
    rule = answers.compile_answer_rule({"json_field": "ok", "json_error": "false"})
    assert rule.classify(200, '{"ok": false}').outcome == "rejected"
    assert rule.classify(200, '{"ok": true}').outcome == "delivered"


def test_contains_rule() -> None:
    rule = answers.compile_answer_rule({"body_error_contains": "success=false;"})
    assert rule.classify(200, "success=false;error=Invalid transaction").outcome == "rejected"
    assert rule.classify(200, "success=true;").outcome == "delivered"


def test_unknown_rule_key_is_an_error() -> None:
    with pytest.raises(ValueError, match="body_eror_prefix"):
        answers.compile_answer_rule({"body_eror_prefix": "ERROR"})


def test_unknown_preset() -> None:
    with pytest.raises(catalog.UnknownPreset):
        answers.answer_rule_for("no-such-network")


def test_every_preset_rule_compiles() -> None:
    for name in catalog.names():
        assert hasattr(answers.answer_rule_for(name), "classify")


def _examples() -> list[object]:
    return [
        pytest.param(name, example, id=f"{name}-{i}")
        for name in catalog.names()
        for i, example in enumerate(catalog.get(name).examples)
    ]


@pytest.mark.parametrize(("name", "example"), _examples())
def test_quoted_answers(name: str, example: catalog.Example) -> None:
    """Each network's real answers, quoted in the catalog, get the verdict stated there."""
    verdict = answers.classify(name, example.status, example.body)
    assert verdict.outcome == example.outcome, verdict
    if example.outcome == "rejected" and example.body and 200 <= example.status < 300:
        assert verdict.reason  # the network's own words

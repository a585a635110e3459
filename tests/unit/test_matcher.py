from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.errors import TemplateError
from app.fields.templating import render_text
from app.incident import Incident
from app.runbooks.matcher import Matcher
from app.runbooks.models import Runbook, RunbookFile
from app.runbooks.plan import plan
from app.steps.ansible.spec import AnsibleStep


def incident(**kw: Any) -> Incident:
    base: dict[str, Any] = {
        "source": "alertmanager", "delivery_id": "d", "event_type": "alert.firing",
        "status": "firing", "title": "HTTP 503 on web", "severity": "critical",
        "service": "web", "labels": {"alertname": "HighErrorRate", "env": "prod", "code": "503"},
        "fingerprint": "f", "received_at": datetime.now(UTC),
        "raw": {"commonLabels": {"team": "web-platform"}, "alerts": [{"status": "firing"}]},
    }  # fmt: skip
    return Incident(**(base | kw))


def matches(match: dict[str, Any], inc: Incident | None = None) -> bool:
    runbook = Runbook.model_validate(
        {"name": "r", "match": match, "steps": [{"ansible": {"playbook": "p"}}]}
    )
    return bool(Matcher([RunbookFile(runbook=runbook, file="f", line=1)]).match(inc or incident()))


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({}, True),
        ({"status": "resolved"}, False),
        ({"source": "alertmanager"}, True),
        ({"source": ["rootly", "generic"]}, False),
        ({"severity": ["critical", "high"]}, True),
        ({"severity": "low"}, False),
        ({"service": "web"}, True),
        ({"all": [{"field": "labels.alertname", "equals": "HighErrorRate"}]}, True),
        ({"all": [{"field": "labels.code", "equals": 503}]}, True),
        ({"all": [{"field": "labels.env", "in": ["prod", "staging"]}]}, True),
        ({"all": [{"field": "labels.env", "in": ["dev"]}]}, False),
        ({"all": [{"field": "title", "matches": "5\\d\\d"}]}, True),
        ({"all": [{"field": "raw.commonLabels.team", "contains": "web"}]}, True),
        ({"all": [{"field": "raw.alerts.0.status", "equals": "firing"}]}, True),
        ({"all": [{"field": "labels.missing", "exists": False}]}, True),
        ({"all": [{"field": "labels.missing", "equals": None}]}, False),
        (
            {
                "all": [
                    {"field": "labels.env", "exists": True},
                    {"field": "title", "contains": "404"},
                ]
            },
            False,
        ),
        (
            {"any": [{"field": "title", "contains": "404"}, {"field": "title", "contains": "503"}]},
            True,
        ),
        ({"any": [{"field": "title", "contains": "404"}]}, False),
        ({"none": [{"field": "labels.env", "equals": "prod"}]}, False),
        ({"none": [{"field": "labels.env", "equals": "dev"}]}, True),
    ],
)
def test_conditions(match: dict[str, Any], expected: bool) -> None:
    assert matches(match) is expected


def test_templates_render_with_the_incident_and_fail_on_undefined() -> None:
    runbook = Runbook.model_validate(
        {"name": "r", "concurrency": "{{ incident.service }}-{{ incident.labels.env }}",
         "steps": [{"ansible": {"playbook": "p", "limit": "{{ incident.labels.env }}",
                                "extra_vars": {"x": ["{{ runbook.name }}", 3], "y": "{{ incident.labels.nope }}"}}}]}
    )  # fmt: skip
    planned = plan(runbook, incident())
    assert planned.error is not None and "nope" in planned.error
    ansible = runbook.steps[0].spec
    assert isinstance(ansible, AnsibleStep)
    runbook = runbook.model_copy(update={"steps": [runbook.steps[0].model_copy(
        update={"spec": ansible.model_copy(update={"extra_vars": {"x": ["{{ runbook.name }}", 3]}})})]})  # fmt: skip
    planned = plan(runbook, incident())
    assert planned.error is None and planned.concurrency_key == "web-prod"
    assert planned.steps[0].spec["limit"] == "prod" and planned.steps[0].spec["extra_vars"] == {
        "x": ["r", 3]
    }


def test_the_sandbox_refuses_python_internals() -> None:
    with pytest.raises(TemplateError):
        render_text("{{ ''.__class__.__mro__[1].__subclasses__() }}", {})


def test_payload_values_are_never_rendered() -> None:
    context = {"incident": {"title": "{{ 7*7 }}"}}
    assert render_text("{{ incident.title }}", context) == "{{ 7*7 }}"

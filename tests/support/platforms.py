"""Each incident platform as the tests play it: its configuration here, and its calls
signed the way the platform's own documentation says it signs them (written from those
docs, not from the service's verifiers, so a shared misreading cannot pass unnoticed)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.signing import secret_key, signed_headers
from tests.support.entra import entra_config, sign_azure_monitor
from tests.support.service import AM_TOKEN, FAILING_STEP, FIXTURES, Api, delivered, sign_generic

ROOTLY_SECRET = "rootly-webhook-secret"
PAGERDUTY_SECRET = "pagerduty-subscription-secret"
GRAFANA_SECRET = "grafana-hmac-secret"
OPSGENIE_TOKEN = "opsgenie-custom-header-token"
DATADOG_TOKEN = "datadog-custom-header-token"
SENTRY_SECRET = "sentry-integration-client-secret"
INCIDENTIO_SECRET = "whsec_aW5jaWRlbnQtaW8td2ViaG9vay1zZWNyZXQ="
PAYLOADS = FIXTURES / "payloads"
SNS_TOPIC = "arn:aws:sns:eu-west-1:123456789012:alarms"

SOURCES: dict[str, dict[str, Any]] = {
    "alertmanager": {"token": AM_TOKEN},
    "rootly": {"secret": ROOTLY_SECRET},
    "pagerduty": {"secret": PAGERDUTY_SECRET},
    "grafana": {"secret": GRAFANA_SECRET, "timestamp_header": "X-Grafana-Alerting-Timestamp"},
    "opsgenie": {"token": OPSGENIE_TOKEN, "token_header": "X-Remediator-Token"},
    "datadog": {"token": DATADOG_TOKEN},
    "sentry": {"secret": SENTRY_SECRET},
    "incidentio": {"secret": INCIDENTIO_SECRET},
    # Its certificates on the loopback SNS stand-in (tests/support/standins/sns.py); the
    # tests that fetch one add its `ca_file`.
    "cloudwatch": {"topic_arns": [SNS_TOPIC], "cert_host_pattern": "^localhost$"},
    "azure_monitor": entra_config(),
}


def _hex(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def sign_rootly(
    body: bytes, *, at: float | None = None, secret: str = ROOTLY_SECRET
) -> dict[str, str]:
    """Rootly: `X-Rootly-Signature: t=<ts>,v1=<hex HMAC-SHA256 of ts + body>`."""
    stamp = str(int(time.time() if at is None else at))
    return {"X-Rootly-Signature": f"t={stamp},v1={_hex(secret, stamp.encode() + body)}"}


def sign_pagerduty(
    body: bytes, *, secrets: tuple[str, ...] = (PAGERDUTY_SECRET,)
) -> dict[str, str]:
    """PagerDuty v3: `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>]`, one per active secret."""
    signatures = ",".join(f"v1={_hex(s, body)}" for s in secrets)
    return {
        "X-PagerDuty-Signature": signatures,
        "X-Webhook-Id": "9d3f6b1e-delivery",
        "X-Webhook-Subscription": "PXXXXXX",
        "User-Agent": "PagerDuty-Webhook/V3.0",
    }


def sign_grafana(
    body: bytes, *, at: float | None = None, secret: str = GRAFANA_SECRET
) -> dict[str, str]:
    """Grafana's HMAC option with a timestamp header: hex HMAC-SHA256 of `ts:body`."""
    stamp = str(int(time.time() if at is None else at))
    return {
        "X-Grafana-Alerting-Signature": _hex(secret, stamp.encode() + b":" + body),
        "X-Grafana-Alerting-Timestamp": stamp,
    }


def sign_opsgenie(body: bytes, *, token: str = OPSGENIE_TOKEN) -> dict[str, str]:
    return {"X-Remediator-Token": token}


def sign_datadog(body: bytes, *, token: str = DATADOG_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sign_sentry(body: bytes, *, at: float | None = None,
                secret: str = SENTRY_SECRET) -> dict[str, str]:  # fmt: skip
    """Sentry: `Sentry-Hook-Signature`, hex HMAC-SHA256 of the body; the resource and
    the time beside it, unsigned."""
    data = json.loads(body).get("data") if body.strip().startswith(b"{") else None
    resource = ("metric_alert" if isinstance(data, dict) and "metric_alert" in data
                else "event_alert" if isinstance(data, dict) and "event" in data else "issue")  # fmt: skip
    return {"Sentry-Hook-Signature": _hex(secret, body), "Sentry-Hook-Resource": resource,
            "Sentry-Hook-Timestamp": str(int(time.time() if at is None else at)),
            "Request-ID": "0c2d3e4f-sentry-request"}  # fmt: skip


def sign_incidentio(body: bytes, *, at: float | None = None, secret: str = INCIDENTIO_SECRET,
                    svix: bool = False) -> dict[str, str]:  # fmt: skip
    """incident.io (Svix): Standard Webhooks headers, or the same under `svix-*` names."""
    headers = signed_headers(secret_key(secret), msg_id=f"msg_{uuid.uuid4().hex}",
                             timestamp=int(time.time() if at is None else at), body=body)  # fmt: skip
    if svix:
        return {name.replace("webhook-", "svix-"): value for name, value in headers.items()}
    return headers


def sign_alertmanager(body: bytes, *, token: str = AM_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


SIGNERS: dict[str, Callable[[bytes], dict[str, str]]] = {
    "generic": sign_generic,
    "alertmanager": sign_alertmanager,
    "rootly": sign_rootly,
    "pagerduty": sign_pagerduty,
    "grafana": sign_grafana,
    "opsgenie": sign_opsgenie,
    "datadog": sign_datadog,
    "sentry": sign_sentry,
    "incidentio": sign_incidentio,
    # SNS signs inside the body (tests/support/standins/sns.py): no header proves it.
    "cloudwatch": lambda body: {"x-amz-sns-message-type": "Notification"},
    "azure_monitor": sign_azure_monitor,
}


def load(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return payload


def live(payload: dict[str, Any]) -> dict[str, Any]:
    """A documented sample as it arrives today: the times it states about itself are
    recent (the samples are from 2018-2023), as a live delivery's are. The service refuses
    a body older than its replay or dedup window. `payload` itself is not changed."""
    payload = json.loads(json.dumps(payload))
    now = datetime.now(UTC)
    if isinstance(payload.get("event"), dict):  # PagerDuty
        payload["event"]["occurred_at"] = now.isoformat()
    if isinstance(payload.get("alert"), dict) and "createdAt" in payload["alert"]:  # Opsgenie
        payload["alert"]["createdAt"] = int(now.timestamp() * 1000)
    for name in ("date", "last_updated"):  # Datadog
        if isinstance(payload.get(name), str) and payload[name].isdigit():
            payload[name] = str(int(now.timestamp() * 1000))
    for alert in payload.get("alerts") or []:  # Alertmanager, Grafana
        if isinstance(alert, dict) and "startsAt" in alert:
            alert["startsAt"] = now.isoformat()
    for name, found in payload.items():  # incident.io
        if name.startswith("public_incident.") and isinstance(found, dict):
            found["created_at"] = found["updated_at"] = now.isoformat().replace("+00:00", "Z")
    data = payload.get("data")
    essentials = data.get("essentials") if isinstance(data, dict) else None
    if isinstance(essentials, dict):  # Azure Monitor
        for name in ("firedDateTime", "resolvedDateTime"):
            if essentials.get(name):
                essentials[name] = now.isoformat().replace("+00:00", "Z")
    if isinstance(data, dict):  # Sentry
        stamp = now.isoformat().replace("+00:00", "Z")
        for name, key in (("event", "datetime"), ("metric_alert", "date_started"),
                          ("metric_alert", "date_detected"), ("issue", "lastSeen")):  # fmt: skip
            if isinstance(data.get(name), dict) and key in data[name]:
                data[name][key] = stamp
        if isinstance(data.get("event"), dict) and "timestamp" in data["event"]:
            data["event"]["timestamp"] = now.timestamp()
    return payload


def live_sns(message: dict[str, Any]) -> dict[str, Any]:
    """An SNS sample as it arrives today: sent now, its alarm's state changed now."""
    now = datetime.now(UTC)
    sent = {**message, "Timestamp": now.isoformat(timespec="milliseconds").replace("+00:00", "Z")}
    if sent["Type"] == "Notification":
        alarm = json.loads(sent["Message"])
        alarm["StateChangeTime"] = now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
        sent["Message"] = json.dumps(alarm, separators=(",", ":"))
    return sent


@dataclass(frozen=True)
class Sample:
    """One documented payload of one platform, and what it must become."""

    source: str
    file: str
    status: str
    title: str

    def body(self) -> bytes:
        return json.dumps(live(load(f"{self.source}/{self.file}"))).encode()

    @property
    def path(self) -> Path:
        return PAYLOADS / self.source / self.file


FIRING = [
    Sample("rootly", "incident-created.json", "firing", "Sparkling Frost"),
    Sample("pagerduty", "incident-triggered.json", "firing", "A little bump in the road"),
    Sample("grafana", "docs-sample.json", "firing", "This alert was triggered for zone us-1"),
    Sample("opsgenie", "create.json", "firing", "Disk usage above 90% on db-7"),
    Sample("datadog", "custom-triggered.json", "firing", "High CPU on web hosts"),
    Sample("sentry", "issue-alert.json", "firing", "ReferenceError: heck is not defined"),
    Sample("incidentio", "incident-created.json", "firing", "Our database is sad"),
    Sample("azure_monitor", "metric-fired.json", "firing", "WCUS-R2-Gen2"),
]
RESOLVED = [
    Sample("rootly", "incident-resolved.json", "resolved", "Sparkling Frost"),
    Sample("pagerduty", "incident-resolved.json", "resolved", "A little bump in the road"),
    Sample("grafana", "resolved.json", "resolved", "This alert was triggered for zone us-1"),
    Sample("opsgenie", "close.json", "resolved", "Disk usage above 90% on db-7"),
    Sample("datadog", "custom-recovered.json", "resolved", "High CPU on web hosts"),
    Sample("sentry", "issue-resolved.json", "resolved", "ReferenceError: heck is not defined"),
    Sample("incidentio", "incident-closed.json", "resolved", "Our database is sad"),
    Sample("azure_monitor", "metric-resolved.json", "resolved", "WCUS-R2-Gen2"),
]


def _nested(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(payload))
    *parents, last = path.split(".")
    node = copy
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[last] = value
    return copy


# A later event of the same incident, as each platform sends it: a new delivery that
# must be recognised as the incident already being handled.
FOLLOW_UPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "rootly": lambda p: _nested(
        _nested(p, "event.id", "0b3e5a7c-9d1f-4e2a-8b6c-4d0f2a9e7c15"),
        "event.type",
        "incident.updated",
    ),
    "pagerduty": lambda p: _nested(
        _nested(p, "event.id", "01DRB6ZQ0AACKNOWLEDGED00001"),
        "event.event_type",
        "incident.acknowledged",
    ),
    "grafana": lambda p: _nested(p, "title", "[FIRING:2]  (blue) repeated"),
    "opsgenie": lambda p: _nested(p, "alert.updatedAt", 1542112011999000000),
    "datadog": lambda p: _nested(
        _nested(p, "id", "7465389723455134600"), "alert_transition", "Renotify"
    ),
    # Another event of the same issue fires the rule again.
    "sentry": lambda p: _nested(p, "data.event.event_id", "f1c2a9d04b7e4e5c9a3d2b1c0e9f8a7b"),
    # Azure Monitor notifies again while the alert stays fired (a changed value).
    "azure_monitor": lambda p: _nested(p, "data.alertContext.condition.allOf.0.metricValue", 44.5),
    "incidentio": lambda p: {
        "event_type": "public_incident.incident_updated_v2",
        "public_incident.incident_updated_v2": _nested(
            p["public_incident.incident_created_v2"], "summary", "Still sad, found the cause."
        ),
    },
}


def fails_on(source: str, target: str) -> list[dict[str, Any]]:
    """A runbook for any incident from `source` that fails on purpose and escalates to
    `target`."""
    return [
        {
            "name": "fails",
            "match": {"source": source},
            "steps": [FAILING_STEP],
            "escalate": [target],
        }
    ]


def clears_cache(under: Path) -> dict[str, Any]:
    """A step that succeeds: the example playbook empties a cache directory made under
    `under` (a test's tmp_path, under /tmp). Never `under` itself: that holds the test's
    SQLite database, which the play would delete while the service uses it."""
    cache_dir = under / "cache"
    cache_dir.mkdir(exist_ok=True)
    return {"ansible": {"playbook": "clear-cache.yml", "inventory": "inventories/local.ini",
                        "extra_vars": {"cache_dir": str(cache_dir)}}}  # fmt: skip


def remediates(source: str, target: str, cache_dir: Path, **extra: Any) -> list[dict[str, Any]]:
    """A runbook for any incident from `source` that succeeds and tells `target` so
    (`notify_on_success`)."""
    return [{"name": "fixes", "match": {"source": source}, "steps": [clears_cache(cache_dir)],
             "notify_on_success": [target], **extra}]  # fmt: skip


def send_sample(api: Api, source: str, file: str) -> str:
    """Send a documented sample of `source`, signed; the execution it started."""
    body = json.dumps(live(load(f"{source}/{file}"))).encode()
    answer = api.client.post(f"/webhooks/{source}", content=body, headers=SIGNERS[source](body))
    assert answer.status_code == 202, answer.text
    (execution_id,) = answer.json()["executions"]
    return str(execution_id)


def told(api: Api, execution_id: str) -> dict[str, Any]:
    """The execution once it succeeded and its success notice was delivered or given up."""
    return api.wait(
        execution_id,
        until=lambda e: (
            e["status"] not in ("queued", "running", "verifying")
            and any(
                x["reason"] == "remediated" and x["status"] != "pending" for x in e["escalations"]
            )
        ),
    )


def escalated_from(api: Api, source: str, file: str) -> dict[str, Any]:
    """Send a documented sample of `source`, signed; the execution once escalated."""
    return delivered(api, send_sample(api, source, file))

"""The service as the tests drive it: the config they write, the credentials they use,
the payloads they send, and `Api`, a client of an app started in-process with waits on
conditions."""

from __future__ import annotations

import atexit
import base64
import functools
import itertools
import json
import os
import shutil
import socket
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import yaml
from fastapi import FastAPI

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 under its test client; httpx is what the service
    # itself uses, and the client works the same (benches import this module too).
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from app.config.settings import Settings
from app.services import Services
from app.signing import secret_key, signed_headers
from app.store.db import Database
from app.store.models import FINAL as FINAL_STATUSES

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
FIXTURES = ROOT / "tests" / "fixtures"
GENERIC_SECRET = "whsec_" + base64.b64encode(b"test-generic-secret").decode()
ESCALATION_SECRET = "whsec_" + base64.b64encode(b"test-escalation-secret").decode()
AM_TOKEN = "test-alertmanager-token"
# One identity per role, as a team would have them; API_TOKEN is the admin's.
TOKENS = {
    "ops-admin": "test-api-token-ops-admin",
    "alice": "test-token-alice-responder",
    "bob": "test-token-bob-responder",
    "dashboards": "test-token-dashboards-viewer",
    "ci": "test-token-ci-pipeline-01",
}
ROLES = {"ops-admin": "admin", "alice": "responder", "bob": "responder",
         "dashboards": "viewer", "ci": "ci"}  # fmt: skip
API_TOKENS = [{"name": name, "token": TOKENS[name], "roles": [ROLES[name]]} for name in TOKENS]
API_TOKEN = TOKENS["ops-admin"]


def bearer(name: str) -> dict[str, str]:
    """The Authorization header of the identity `name`."""
    return {"authorization": f"Bearer {TOKENS[name]}"}


FINAL = frozenset(FINAL_STATUSES)


# Ports handed to processes that bind them later (a `remediator serve` starting, a
# PostgreSQL): below the kernel's ephemeral range (32768-60999 on Linux), which every
# server binding port 0 and every outgoing connection draws from, so a stand-in started
# meanwhile cannot take the port first; and a block of its own per xdist worker.
PORTS_FROM, PORTS_PER_WORKER = 20_000, 1_000
_handed_out = itertools.count()


def free_port() -> int:
    """A loopback port nothing is bound to now, which no other test process hands out."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    first = PORTS_FROM + int(worker or 0) % 12 * PORTS_PER_WORKER
    for _ in range(PORTS_PER_WORKER):
        port = first + next(_handed_out) % PORTS_PER_WORKER
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port in {first}-{first + PORTS_PER_WORKER - 1}")


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Recorder:
    """A local HTTP server that records POSTs and answers from a script of replies:
    each reply is a status code, or "hang" to wait longer than any client timeout."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    replies: list[int | str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.requests) >= count, f"expected {count} request(s), got {len(self.requests)}"
        return self.requests


def write_config(directory: Path, runbooks: list[dict[str, Any]], **overrides: Any) -> Path:
    """A config file in `directory` with the given runbooks and the repo's playbooks."""
    runbooks_dir = directory / "runbooks"
    runbooks_dir.mkdir(exist_ok=True)
    (runbooks_dir / "test.yml").write_text(yaml.safe_dump(runbooks, sort_keys=False))
    config: dict[str, Any] = {
        "runbooks_dir": "runbooks",
        "playbooks_dir": str(TEST_PLAYBOOKS),
        "database_url": DEFAULT_SQLITE,
        "public_url": "http://remediator.test",
        "api_tokens": API_TOKENS,
        "poll_interval_s": 0.1,
        "lease_s": 5,
        "shutdown_grace_s": 5,
        "sources": {
            "alertmanager": {"token": AM_TOKEN},
            "generic": {"secret": GENERIC_SECRET},
        },
        # Many tests fail a runbook on purpose, many times; the breaker (on by default in
        # the product) would hold their later runs for approval. A test of the breaker
        # sets the one it needs (`breaker={}`: the product's default).
        "breaker": {"enabled": False},
    }
    config.update(overrides)
    if config["database_url"] == DEFAULT_SQLITE and not (directory / "remediator.db").exists():
        # Migrated once per process and copied: the service's start then finds the schema
        # at head, as a restart does, instead of running every migration per test.
        shutil.copyfile(migrated_sqlite(), directory / "remediator.db")
    path = directory / "remediator.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


DEFAULT_SQLITE = "sqlite:///remediator.db"


@functools.cache
def migrated_sqlite() -> Path:
    """A SQLite database at the newest schema, made once per test process."""
    directory = Path(tempfile.mkdtemp(prefix="remediator-template-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    db = Database(f"sqlite:///{directory / 'remediator.db'}")
    try:
        db.upgrade()
    finally:
        db.close()
    return directory / "remediator.db"


TEST_PLAYBOOKS = FIXTURES / "playbooks"


def sign_generic(body: bytes, *, timestamp: float | None = None) -> dict[str, str]:
    """Standard Webhooks headers for `body`, signed with the test generic secret."""
    return signed_headers(
        secret_key(GENERIC_SECRET),
        msg_id=str(uuid.uuid4()),
        timestamp=int(time.time() if timestamp is None else timestamp),
        body=body,
    )


def ansible_step(
    playbook: str, timeout: str = "60s", inventory: str | None = None, **extra_vars: Any
) -> dict[str, Any]:
    """A step; with no inventory, Ansible's implicit localhost (local connection)."""
    step: dict[str, Any] = {"playbook": playbook, "extra_vars": extra_vars, "timeout": timeout}
    if inventory:
        step["inventory"] = inventory
    return {"ansible": step}


def runbook(name: str, alertname: str, step: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A runbook with one step, for alerts named `alertname`."""
    return {
        "name": name,
        "match": {"all": [{"field": "labels.alertname", "equals": alertname}]},
        "steps": [step],
        **extra,
    }


# Fails on purpose (the example database-failover playbook refuses to promote).
FAILING_STEP = {
    "ansible": {
        "playbook": "database-failover.yml",
        "inventory": "inventories/local.ini",
        "extra_vars": {"cluster": "orders", "lag_seconds": "99"},
    }
}


class Api:
    """The running app, driven over HTTP by the test."""

    def __init__(self, client: TestClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.auth = {"authorization": f"Bearer {API_TOKEN}"}

    @property
    def services(self) -> Services:
        """The app's services, as its routes see them."""
        services: Services = cast(FastAPI, self.client.app).state.services
        return services

    def alertmanager(self, payload: dict[str, Any], token: str = AM_TOKEN) -> httpx.Response:
        answer: httpx.Response = self.client.post(
            "/webhooks/alertmanager", json=payload, headers={"authorization": f"Bearer {token}"}
        )
        return answer

    def generic(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        answer: httpx.Response = self.client.post(
            "/webhooks/generic",
            content=body,
            headers={**headers, "content-type": "application/json"},
        )
        return answer

    def execution(self, execution_id: str) -> dict[str, Any]:
        answer = self.client.get(f"/api/executions/{execution_id}", headers=self.auth)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def executions(self, **params: str) -> list[dict[str, Any]]:
        answer = self.client.get("/api/executions", params=params, headers=self.auth)
        assert answer.status_code == 200, answer.text
        result: list[dict[str, Any]] = answer.json()
        return result

    def act(
        self, execution_id: str, action: str, by: str = "alice", reason: str = ""
    ) -> httpx.Response:
        answer: httpx.Response = self.client.post(
            f"/api/executions/{execution_id}/{action}",
            json={"reason": reason},
            headers=bearer(by),
        )
        return answer

    def wait(
        self,
        execution_id: str,
        timeout: float = 90.0,
        until: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        done = until or (lambda e: e["status"] in FINAL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            execution = self.execution(execution_id)
            if done(execution):
                return execution
            time.sleep(0.1)
        raise AssertionError(f"execution {execution_id} not done: {self.execution(execution_id)}")


def alert(
    name: str, *, status: str = "firing", fingerprint: str = "fp-1", **labels: str
) -> dict[str, Any]:
    """An Alertmanager v4 notification with one alert."""
    all_labels = {"alertname": name, "severity": "critical", **labels}
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "remediator",
        "groupLabels": {"alertname": name},
        "commonLabels": all_labels,
        "commonAnnotations": {"summary": f"{name} on {labels.get('instance', 'host')}"},
        "externalURL": "http://alertmanager.test:9093",
        "alerts": [
            {
                "status": status,
                "labels": all_labels,
                "annotations": {"summary": f"{name} on {labels.get('instance', 'host')}"},
                "startsAt": datetime.now(UTC).isoformat(),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.test:9090/graph",
                "fingerprint": fingerprint,
            }
        ],
    }


def alert_group(alerts: int, *, tiny: bool = False, first: int = 0) -> dict[str, Any]:
    """An Alertmanager v4 notification of `alerts` alerts, each its own host; `tiny`:
    each alert only its status and two labels (~46 bytes, the issue's 137 KiB body)."""
    started = datetime.now(UTC).isoformat()
    if tiny:
        return {
            "version": "4",
            "alerts": [
                {"status": "firing", "labels": {"alertname": "N", "i": str(i)}}
                for i in range(first, first + alerts)
            ],
        }
    return {
        "version": "4",
        "groupKey": '{}:{alertname="NodeDown"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "remediator",
        "groupLabels": {"alertname": "NodeDown"},
        "commonLabels": {"alertname": "NodeDown", "severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.test:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "NodeDown", "severity": "critical", "i": f"n{i}"},
                "startsAt": started,
                "fingerprint": f"{i:016x}",
            }
            for i in range(first, first + alerts)
        ],
    }


def delivered(api: Api, execution_id: str) -> dict[str, Any]:
    """The execution once its first escalation was delivered or given up."""
    return api.wait(
        execution_id,
        until=lambda e: bool(e["escalations"]) and e["escalations"][0]["status"] != "pending",
    )


def slack_marked(message: dict[str, Any]) -> list[str]:
    """The texts of a Slack message that Slack reads markup in: the fallback `text` and
    every mrkdwn block (plain_text is shown as is)."""
    return [message["text"]] + [
        block["text"]["text"] for block in message["blocks"]
        if block.get("text", {}).get("type") == "mrkdwn"
    ]  # fmt: skip

"""docker-compose.yml and the Dockerfile, checked by reading them (no Docker engine runs
here), and what they run, run without Docker: the image's command with the compose
environment, two replicas on one PostgreSQL, healthy by the compose health check."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.api.routes import health
from app.cli import parser
from app.config.settings import Settings
from tests.support.postgres import PostgresServer
from tests.support.servers import Server
from tests.support.service import GENERIC_SECRET, ROOT, free_port

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
REPLICAS = ["remediator-1", "remediator-2"]
WORKDIR = "/srv"


def dockerfile_json(instruction: str) -> list[str]:
    match = re.search(rf"^{instruction} (\[.*\])$", DOCKERFILE, re.MULTILINE)
    assert match, f"no {instruction} in the Dockerfile"
    result: list[str] = yaml.safe_load(match.group(1))
    return result


def compose_environment(values: dict[str, str]) -> dict[str, str]:
    """The replicas' environment with ${VAR...} filled from `values`, as compose does."""
    raw: dict[str, str] = COMPOSE["services"]["remediator-1"]["environment"]

    def fill(text: str) -> str:
        return re.sub(r"\$\{(\w+)(?::[-?][^}]*)?\}", lambda m: values[m.group(1)], text)

    return {name: fill(str(value)) for name, value in raw.items()}


def test_compose_runs_two_replicas_on_postgres_with_health_checks() -> None:
    services = COMPOSE["services"]
    assert services["postgres"]["healthcheck"]["test"]
    for name in REPLICAS:
        service = services[name]
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["healthcheck"]["test"]
        assert service["environment"]["REMEDIATOR_DATABASE_URL"].startswith("postgresql://")
        assert service["stop_grace_period"]
    assert len({services[name]["ports"][0] for name in REPLICAS}) == 2


def test_compose_volumes_are_the_configured_directories() -> None:
    config = yaml.safe_load((ROOT / "remediator.yaml").read_text())
    mounts = dict(v.split(":")[:2] for v in COMPOSE["services"]["remediator-1"]["volumes"])
    for key in ("runbooks_dir", "playbooks_dir", "terraform_dir"):
        host = f"./{config[key]}"
        assert (ROOT / config[key]).is_dir(), host
        assert mounts[host] == f"{WORKDIR}/{config[key]}"
    assert mounts["./remediator.yaml"] == f"{WORKDIR}/remediator.yaml"
    # terraform_dir must be inside a git repository: the one it is mounted from.
    assert mounts["./.git"] == f"{WORKDIR}/.git"
    assert "safe.directory" in DOCKERFILE


def test_compose_environment_names_real_settings_and_every_secret() -> None:
    environment: dict[str, Any] = COMPOSE["services"]["remediator-1"]["environment"]
    fields = {f"REMEDIATOR_{name.upper()}" for name in Settings.model_fields}
    overrides = {n for n in environment if n.startswith("REMEDIATOR_")} - {"REMEDIATOR_CONFIG"}
    # REMEDIATOR_API_TOKEN is read by the config file (`env:`), not a setting of its own.
    assert overrides - {"REMEDIATOR_API_TOKEN"} <= fields
    wanted = set(
        re.findall(r"'env:(\w+)'", str(yaml.safe_load((ROOT / "remediator.yaml").read_text())))
    )
    assert wanted <= set(environment), wanted - set(environment)


def test_dockerfile_copies_what_exists_and_runs_the_cli() -> None:
    for line in re.findall(r"^COPY (.+) \S+$", DOCKERFILE, re.MULTILINE):
        for source in line.split():
            assert (ROOT / source).exists(), source
    argv = dockerfile_json("CMD")
    assert dockerfile_json("ENTRYPOINT") == ["remediator"]
    args = parser().parse_args(argv)
    assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", 8080)
    assert args.config == f"{WORKDIR}/remediator.yaml"
    probe = " ".join(COMPOSE["services"]["remediator-1"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8080/readyz" in probe and "/readyz" in health_paths()
    assert "http://127.0.0.1:8080/readyz" in DOCKERFILE


def health_paths() -> set[str]:
    return {getattr(route, "path", "") for route in health.router.routes}


@pytest.mark.server
@pytest.mark.ansible
def test_what_compose_runs_runs_without_docker(postgres: PostgresServer, tmp_path: Path) -> None:
    values = {
        "REMEDIATOR_PUBLIC_URL": "http://127.0.0.1:8081",
        "REMEDIATOR_API_TOKEN": "compose-token-0123456789",
        "ALERTMANAGER_TOKEN": "am",
        "GENERIC_WEBHOOK_SECRET": GENERIC_SECRET,
        "ESCALATION_WEBHOOK_URL": "http://127.0.0.1:9/",
        "ESCALATION_SECRET": GENERIC_SECRET,
    }
    environment = compose_environment(values)
    # The same image command and environment; only the places differ: the repository
    # instead of /srv, the test PostgreSQL instead of the `postgres` service.
    environment["REMEDIATOR_CONFIG"] = str(ROOT / "remediator.yaml")
    environment["REMEDIATOR_DATABASE_URL"] = postgres.new_database()
    probe = COMPOSE["services"]["remediator-1"]["healthcheck"]["test"][-1]
    servers = []
    try:
        for index in range(2):
            port = free_port()
            argv = [a.replace(f"{WORKDIR}/remediator.yaml", environment["REMEDIATOR_CONFIG"])
                    for a in dockerfile_json("CMD")]  # fmt: skip
            argv[argv.index("--port") + 1] = str(port)
            argv[argv.index("--host") + 1] = "127.0.0.1"
            log = tmp_path / f"replica-{index}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "app.cli", *argv], cwd=tmp_path, stdout=out,
                    stderr=subprocess.STDOUT, env={**os.environ, **environment},
                )  # fmt: skip
            server = Server(proc, f"http://127.0.0.1:{port}", log)
            servers.append(server)
            server.wait_ready()
            health = subprocess.run(
                [sys.executable, "-c", probe.replace(":8080/", f":{port}/")],
                capture_output=True, check=False, timeout=30,
            )  # fmt: skip
            assert health.returncode == 0, health.stderr
        answer = httpx.get(
            f"{servers[1].base}/api/executions",
            headers={"authorization": f"Bearer {values['REMEDIATOR_API_TOKEN']}"},
        )
        assert answer.status_code == 200
    finally:
        for server in servers:
            server.close()

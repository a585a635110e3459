"""deploy/kubernetes/, checked by rendering it (no cluster runs here): `kubectl kustomize`
renders the base and the PostgreSQL overlay, every object validates against the
Kubernetes JSON schemas (kubernetes-validate, its newest version), every environment
variable, mount, port and probe path agrees with the code, and the container's command
runs with the rendered configuration and environment against a real PostgreSQL."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from app.api.routes import health
from app.cli import parser
from app.config.settings import Settings
from tests.support.postgres import PostgresServer
from tests.support.servers import Server
from tests.support.service import GENERIC_SECRET, ROOT, free_port

KUBECTL = shutil.which("kubectl")
DEPLOY = ROOT / "deploy" / "kubernetes"
pytestmark = pytest.mark.skipif(
    KUBECTL is None,
    reason="no kubectl (Debian: kubernetes-client): deploy/kubernetes is NOT rendered here",
)


def rendered(where: str) -> list[dict[str, Any]]:
    done = subprocess.run([str(KUBECTL), "kustomize", str(DEPLOY / where)], capture_output=True,
                          text=True, check=False, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def one(objects: list[dict[str, Any]], kind: str, name_start: str = "") -> dict[str, Any]:
    [found] = [o for o in objects
               if o["kind"] == kind and o["metadata"]["name"].startswith(name_start)]  # fmt: skip
    return found


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(objects, "Deployment", "remediator")
    [server] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(server)


@pytest.mark.parametrize("where", ["base", "overlays/postgres"])
def test_every_rendered_object_is_valid_kubernetes(where: str) -> None:
    objects = rendered(where)
    assert {o["kind"] for o in objects} >= {
        "Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "ServiceAccount", "Role",
        "RoleBinding",
    }  # fmt: skip
    version = kubernetes_validate.latest_version()
    for item in objects:
        kubernetes_validate.validate(item, version, strict=True)
    if where == "overlays/postgres":
        assert one(objects, "StatefulSet")["spec"]["volumeClaimTemplates"]


def test_the_deployment_runs_the_cli_with_probes_and_ports_the_code_has() -> None:
    objects = rendered("base")
    deployment = one(objects, "Deployment", "remediator")
    server = container(objects)
    args = parser().parse_args(server["args"])
    assert (args.command, args.host) == ("serve", "0.0.0.0")
    [port] = server["ports"]
    assert port["containerPort"] == args.port
    paths = {getattr(route, "path", "") for route in health.router.routes}
    for probe in ("readinessProbe", "livenessProbe"):
        assert server[probe]["httpGet"]["path"] in paths
        assert server[probe]["httpGet"]["port"] == port["name"]
    service = one(objects, "Service", "remediator")
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (deployment["spec"]["selector"]["matchLabels"], service["spec"]["selector"],
                     one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]):  # fmt: skip
        assert selector.items() <= labels.items()
    assert deployment["spec"]["replicas"] == 2


def test_its_configuration_names_real_settings_and_every_secret_is_given() -> None:
    objects = rendered("base")
    server = container(objects)
    config_map = one(objects, "ConfigMap", "remediator-config")
    config = yaml.safe_load(config_map["data"]["remediator.yaml"])
    args = parser().parse_args(server["args"])
    mounts = {m["mountPath"]: m["name"] for m in server["volumeMounts"]}
    volumes = {v["name"]: v for v in one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]}  # fmt: skip
    # The config file is the ConfigMap's, where the command reads it.
    assert volumes[mounts[str(Path(args.config).parent)]]["configMap"]["name"] == config_map["metadata"]["name"]  # fmt: skip
    # The runbooks directory is the runbooks ConfigMap, and it holds runbooks.
    runbooks = volumes[mounts[config["runbooks_dir"]]]["configMap"]["name"]
    assert runbooks == one(objects, "ConfigMap", "remediator-runbooks")["metadata"]["name"]
    # Playbooks and terraform come from the image (WORKDIR /srv, COPY playbooks ...).
    dockerfile = (ROOT / "Dockerfile").read_text()
    for key in ("playbooks_dir", "terraform_dir"):
        name = Path(config[key]).name
        assert f"COPY {name} ./{name}" in dockerfile and config[key] == f"/srv/{name}"
    env = {e["name"]: e for e in server["env"]}
    fields = {f"REMEDIATOR_{name.upper()}" for name in Settings.model_fields}
    assert {n for n in env if n.startswith("REMEDIATOR_")} - {"REMEDIATOR_API_TOKEN"} <= fields
    wanted = set(re.findall(r"'env:(\w+)'", str(config)))  # the values, not the comments
    assert wanted <= set(env), wanted - set(env)
    # Non-root as the image's user, read-only root, the grace a shutdown needs.
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert f"--uid {pod['securityContext']['runAsUser']} " in dockerfile
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["terminationGracePeriodSeconds"] > config["shutdown_grace_s"]
    assert pod["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]


def test_the_overlay_points_the_replicas_at_its_postgres() -> None:
    objects = rendered("overlays/postgres")
    env = [e["name"] for e in container(objects)["env"]]
    url = next(e for e in container(objects)["env"] if e["name"] == "REMEDIATOR_DATABASE_URL")
    # Kubernetes expands $(VAR) only from variables defined before it.
    assert env.index("POSTGRES_PASSWORD") < env.index("REMEDIATOR_DATABASE_URL")
    service = one(objects, "Service", "remediator-postgres")
    assert url["value"] == (f"postgresql://remediator:$(POSTGRES_PASSWORD)@"
                            f"{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/remediator")  # fmt: skip


@pytest.mark.server
@pytest.mark.ansible
def test_the_container_command_runs_with_the_rendered_config(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """The same command, configuration and environment, with only the places moved: the
    mounted files under tmp_path instead of /etc/remediator and /srv, the test's
    PostgreSQL instead of the Secret's."""
    objects = rendered("base")
    server = container(objects)
    config = yaml.safe_load(
        one(objects, "ConfigMap", "remediator-config")["data"]["remediator.yaml"]
    )
    (tmp_path / "runbooks").mkdir()
    for name, text in one(objects, "ConfigMap", "remediator-runbooks")["data"].items():
        (tmp_path / "runbooks" / name).write_text(text)
    config |= {"runbooks_dir": str(tmp_path / "runbooks"), "playbooks_dir": str(ROOT / "playbooks"),
               "terraform_dir": str(ROOT / "terraform")}  # fmt: skip
    (tmp_path / "remediator.yaml").write_text(yaml.safe_dump(config))
    secrets = {"database-url": postgres.new_database(), "api-token": "kube-token-0123456789",
               "alertmanager-token": "am-token", "generic-webhook-secret": GENERIC_SECRET,
               "escalation-webhook-url": "http://127.0.0.1:9/", "escalation-secret": GENERIC_SECRET}  # fmt: skip
    env = {e["name"]: e.get("value") or secrets[e["valueFrom"]["secretKeyRef"]["key"]]
           for e in server["env"]}  # fmt: skip
    env["HOME"] = str(tmp_path)
    port = free_port()
    argv = [str(tmp_path / "remediator.yaml") if a.endswith("/remediator.yaml") else a
            for a in server["args"]]  # fmt: skip
    argv[argv.index("--port") + 1], argv[argv.index("--host") + 1] = str(port), "127.0.0.1"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", *argv], cwd=tmp_path,
                                stdout=out, stderr=subprocess.STDOUT,
                                env={"PATH": os.environ["PATH"], **env})  # fmt: skip
    running = Server(proc, f"http://127.0.0.1:{port}", log)
    try:
        running.wait_ready()
        probe = server["readinessProbe"]["httpGet"]["path"]
        assert httpx.get(f"{running.base}{probe}").status_code == 200
        loaded = httpx.get(f"{running.base}/api/runbooks",
                           headers={"authorization": f"Bearer {secrets['api-token']}"}).json()  # fmt: skip
        assert [r["runbook"]["name"] for r in loaded["runbooks"]] == [
            "restart-crashlooping-service"
        ]
    finally:
        running.close()

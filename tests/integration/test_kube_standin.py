"""The Kubernetes stand-in is checked two ways before remediator is tested against it:
every object it keeps and answers validates against the Kubernetes JSON schemas (its
`violations` stay empty), and Debian's `kubectl`, pointed at it, gets, lists a rollout's
history, waits for its status (list, then watch) and undoes it, seeing what a cluster
would show: revisions, a stalled rollout's deadline, a budget refusing an eviction."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.standins.kube import KUBE_TOKEN, REVISION, KubeStandIn, kube_stand_in

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(
    KUBECTL is None, reason="no kubectl (Debian: kubernetes-client): the stand-in is NOT "
    "cross-checked against it here"
)  # fmt: skip


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubeStandIn]:
    with kube_stand_in(tmp_path) as stand_in:
        yield stand_in
    assert stand_in.violations == []


def kubectl(kube: KubeStandIn, *args: str) -> subprocess.CompletedProcess[str]:
    assert kube.kubeconfig is not None
    return subprocess.run(
        [str(KUBECTL), "-n", "shop", *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, "KUBECONFIG": str(kube.kubeconfig), "HOME": str(kube.kubeconfig.parent)},
    )  # fmt: skip


def image(kube: KubeStandIn) -> str:
    [deployment] = kube.of("deployments", "shop")
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


def test_kubectl_sees_a_release_waits_for_it_and_undoes_it(kube: KubeStandIn) -> None:
    kube.deployment("shop", "web", "nginx:1.25")
    kube.settled("shop", "web")
    kube.set_image("shop", "web", "nginx:1.26")
    assert "deployment.apps/web" in kubectl(kube, "get", "deployments", "-o", "name").stdout
    status = kubectl(kube, "rollout", "status", "deployment/web", "--timeout=30s")
    assert status.returncode == 0 and 'deployment "web" successfully rolled out' in status.stdout
    history = kubectl(kube, "rollout", "history", "deployment/web").stdout.split()
    assert history[history.index("CHANGE-CAUSE") + 1 :: 2] == ["1", "2"]
    undone = kubectl(kube, "rollout", "undo", "deployment/web")
    assert undone.returncode == 0, undone.stderr
    settled = kube.settled("shop", "web")
    assert image(kube) == "nginx:1.25"
    assert settled["metadata"]["annotations"][REVISION] == "3"
    # The undone revision's ReplicaSet moved to the front, as a cluster's does.
    history = kubectl(kube, "rollout", "history", "deployment/web").stdout.split()
    assert history[history.index("CHANGE-CAUSE") + 1 :: 2] == ["2", "3"]
    pods = kube.of("pods", "shop")
    assert len(pods) == 3 and {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:1.25"}


def test_a_stalled_rollout_passes_its_progress_deadline(kube: KubeStandIn) -> None:
    kube.deployment("shop", "web", "nginx:1.25", progress_deadline_s=1)
    kube.settled("shop", "web")
    kube.set_image("shop", "web", "nginx:broken")
    status = kubectl(kube, "rollout", "status", "deployment/web", "--timeout=30s")
    assert status.returncode != 0
    assert 'deployment "web" exceeded its progress deadline' in status.stderr


def test_an_eviction_past_the_budget_is_refused(kube: KubeStandIn) -> None:
    kube.deployment("shop", "web", "nginx:1.25", replicas=2)
    kube.budget("shop", "web", {"app": "web"}, min_available=1)
    kube.settled("shop", "web")
    first, second = (p["metadata"]["name"] for p in kube.of("pods", "shop"))
    auth = {"authorization": f"Bearer {KUBE_TOKEN}"}
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": first}}
    trusted = ssl.create_default_context(cafile=str(kube.ca_file))
    with httpx.Client(verify=trusted, headers=auth) as client:
        evict = f"{kube.base}/api/v1/namespaces/shop/pods/{{}}/eviction"
        assert client.post(evict.format(first), json=body).status_code == 201
        refused = client.post(evict.format(second), json=body | {"metadata": {"name": second}})
    assert refused.status_code == 429 and refused.json()["reason"] == "TooManyRequests"


@pytest.mark.parametrize("plural", ["statefulsets", "daemonsets"])
def test_kubectl_undoes_a_statefulset_or_daemonset_through_its_revisions(
    kube: KubeStandIn, plural: str
) -> None:
    kube.workload(plural, "shop", "db", "pg:15")
    kube.settled("shop", "db", plural=plural)
    kube.set_image("shop", "db", "pg:16", plural=plural)
    kind = plural.removesuffix("s")
    assert kubectl(kube, "rollout", "status", f"{kind}/db", "--timeout=30s").returncode == 0
    history = kubectl(kube, "rollout", "history", f"{kind}/db").stdout.split()
    assert history[history.index("CHANGE-CAUSE") + 1 :: 2] == ["1", "2"]
    assert kubectl(kube, "rollout", "undo", f"{kind}/db").returncode == 0
    assert kubectl(kube, "rollout", "status", f"{kind}/db", "--timeout=30s").returncode == 0
    [workload] = kube.of(plural, "shop")
    assert workload["spec"]["template"]["spec"]["containers"][0]["image"] == "pg:15"
    history = kubectl(kube, "rollout", "history", f"{kind}/db").stdout.split()
    assert history[history.index("CHANGE-CAUSE") + 1 :: 2] == ["2", "3"]

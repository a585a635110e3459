"""The `kubernetes` step kind through the real app against the Kubernetes stand-in (an
API server with a rollout's semantics, cross-checked with kubectl): an undo of a bad
release waits until the old revision is available and leaves what `kubectl rollout undo`
leaves; a restart and a scale complete; a scale past max_replicas is refused; evictions
stop at the PodDisruptionBudget; a stalled rollout fails with its condition; a hostile
name is refused before any request; a shadow run dry-runs the same requests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.service import Api, Recorder, alert, runbook
from tests.support.standins.kube import REVISION, KubeStandIn, kube_stand_in


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubeStandIn]:
    (tmp_path / "kube").mkdir()
    with kube_stand_in(tmp_path / "kube") as stand_in:
        yield stand_in
    assert stand_in.violations == []


def start(make_api: Callable[..., Api], kube: KubeStandIn, step: dict[str, Any],
          database_url: str = "sqlite:///remediator.db", **extra: Any) -> Api:  # fmt: skip
    spec = {"namespace": "{{ incident.labels.namespace }}", "name": "{{ incident.labels.app }}",
            "timeout": "60s", **step}  # fmt: skip
    cluster = {"kubeconfig": str(kube.kubeconfig), "poll_interval_s": 0.2}
    return make_api([runbook("fix-web", "WebBroken", {"kubernetes": spec}, **extra)],
                    kubernetes_clusters={"stand-in": cluster}, database_url=database_url)  # fmt: skip


def fire(api: Api, app: str = "web", **labels: str) -> dict[str, Any]:
    answer = api.alertmanager(alert("WebBroken", namespace="shop", app=app, **labels))
    return api.wait(answer.json()["executions"][0])


def image(kube: KubeStandIn, name: str = "web") -> str:
    [found] = [d for d in kube.of("deployments", "shop") if d["metadata"]["name"] == name]
    return str(found["spec"]["template"]["spec"]["containers"][0]["image"])


def released(kube: KubeStandIn, *names: str) -> None:
    for name in names:
        kube.deployment("shop", name, "nginx:1.25")
        kube.settled("shop", name)
        kube.set_image("shop", name, "nginx:1.26-bad")
        kube.settled("shop", name)


def test_a_bad_release_is_undone_and_waited_for_as_kubectl_would(
    make_api: Callable[..., Api], kube: KubeStandIn
) -> None:
    released(kube, "web", "twin")
    api = start(make_api, kube, {"action": "rollout_undo"})
    done = fire(api)
    assert done["status"] == "succeeded", done
    step = done["steps"][0]
    assert step["outputs"] == {"revision_before": 2, "replicas_before": 3, "revision_to": 1,
                               "revision": 3, "replicas": 3}  # fmt: skip
    assert 'deployment "web" successfully rolled out' in step["detail"]["summary"]
    assert image(kube) == "nginx:1.25"
    patches = [c for c in kube.calls if c[0] == "PATCH"]
    assert patches == [("PATCH", "/apis/apps/v1/namespaces/shop/deployments/web",
                        "application/json-patch+json")]  # fmt: skip
    # kubectl's undo of the twin leaves it as remediator left web.
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl (Debian: kubernetes-client): the undo is not compared with it")
    assert kube.kubeconfig is not None
    subprocess.run([kubectl, "-n", "shop", "rollout", "undo", "deployment/twin"], check=True,
                   capture_output=True, timeout=60,
                   env={**os.environ, "KUBECONFIG": str(kube.kubeconfig)})  # fmt: skip
    twin = kube.settled("shop", "twin")
    web = kube.settled("shop", "web")
    assert image(kube, "twin") == "nginx:1.25"
    assert twin["metadata"]["annotations"] == web["metadata"]["annotations"] == {REVISION: "3"}
    shape = [(c[0], c[2]) for c in kube.calls if c[0] == "PATCH"]
    assert shape[0] == shape[1]  # the same JSON patch, kubectl's and remediator's


def test_a_restart_and_a_scale_complete(make_api: Callable[..., Api], kube: KubeStandIn) -> None:
    kube.deployment("shop", "web", "nginx:1.25")
    kube.settled("shop", "web")
    api = start(make_api, kube, {"action": "rollout_restart"})
    done = fire(api)
    assert done["status"] == "succeeded", done
    [deployment] = kube.of("deployments", "shop")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert (
        annotations["kubectl.kubernetes.io/restartedAt"]
        == done["steps"][0]["outputs"]["restarted_at"]
    )
    assert deployment["metadata"]["annotations"][REVISION] == "2"

    scaled = start(make_api, kube, {"action": "scale", "replicas": "+2", "max_replicas": 6},
                   database_url="sqlite:///scaled.db")  # fmt: skip
    done = fire(scaled)
    assert done["status"] == "succeeded", done
    assert done["steps"][0]["outputs"]["replicas"] == 5
    assert len(kube.of("pods", "shop")) == 5


def test_a_scale_past_max_replicas_is_refused(
    make_api: Callable[..., Api], kube: KubeStandIn
) -> None:
    kube.deployment("shop", "web", "nginx:1.25")
    api = start(make_api, kube, {"action": "scale", "replicas": "+30", "max_replicas": 10})
    done = fire(api)
    assert done["status"] == "refused" and done["guard"] == "max_replicas"
    assert "33 replicas is outside 0..10" in done["error"]
    assert not [c for c in kube.calls if c[0] == "PATCH"]


def test_evictions_stop_at_the_disruption_budget(
    make_api: Callable[..., Api], kube: KubeStandIn
) -> None:
    kube.deployment("shop", "web", "nginx:1.25", replicas=3)
    kube.budget("shop", "web", {"app": "web"}, min_available=2)
    kube.settled("shop", "web")
    api = start(make_api, kube, {"action": "delete_pods", "max_pods": 3})
    done = fire(api)
    assert done["status"] == "succeeded", done
    step = done["steps"][0]
    assert len(step["outputs"]["pods_deleted"]) == 1
    assert "stopped at the PodDisruptionBudget" in step["detail"]["summary"]
    evictions = [c for c in kube.calls if c[1].endswith("/eviction")]
    assert len(evictions) == 2  # one taken, one refused by the budget: then it stops


def test_a_stalled_rollout_fails_with_its_condition_and_escalates(
    make_api: Callable[..., Api], kube: KubeStandIn, recorder: Recorder
) -> None:
    kube.deployment("shop", "web", "nginx:1.25", progress_deadline_s=1)
    kube.settled("shop", "web")
    kube.set_image("shop", "web", "nginx:broken")
    spec = {"namespace": "shop", "name": "web", "action": "rollout_restart", "timeout": "60s"}
    api = make_api(
        [runbook("fix-web", "WebBroken", {"kubernetes": spec}, escalate=["webhook"])],
        kubernetes_clusters={"stand-in": {"kubeconfig": str(kube.kubeconfig), "poll_interval_s": 0.2}},
        escalation={"webhook": {"url": recorder.url}},
    )  # fmt: skip
    done = fire(api)
    assert done["status"] == "failed"
    assert 'deployment "web" exceeded its progress deadline' in done["error"]
    assert "has timed out progressing" in done["error"]
    [paged] = recorder.wait_for(1)
    assert paged.json()["reason"] == "failed"
    assert "exceeded its progress deadline" in paged.json()["execution"]["error"]


@pytest.mark.parametrize("name", ["../web", "a b", "web,all", "Web", "x" * 300])
def test_a_hostile_name_is_refused_before_any_request(
    make_api: Callable[..., Api], kube: KubeStandIn, name: str
) -> None:
    api = start(make_api, kube, {"action": "rollout_restart"})
    done = fire(api, app=name)
    assert done["status"] == "failed" and "is not one Kubernetes name" in done["error"]
    assert kube.calls == []


def test_a_shadow_run_dry_runs_the_same_request(
    make_api: Callable[..., Api], kube: KubeStandIn
) -> None:
    released(kube, "web")
    api = start(make_api, kube, {"action": "rollout_undo"}, mode="shadow")
    done = fire(api)
    assert done["status"] == "shadowed", done
    summary = done["steps"][0]["detail"]["summary"]
    assert summary.startswith("would change: rollout_undo of Deployment shop/web on stand-in")
    assert "rolled back from revision 2 to revision 1" in summary
    assert image(kube) == "nginx:1.26-bad"  # nothing changed
    assert any(c[0] == "PATCH" for c in kube.calls)


@pytest.mark.parametrize(("plural", "kind"), [("statefulsets", "StatefulSet"),
                                              ("daemonsets", "DaemonSet")])  # fmt: skip
def test_a_statefulset_or_daemonset_is_undone_through_its_controller_revision(
    make_api: Callable[..., Api], kube: KubeStandIn, plural: str, kind: str
) -> None:
    kube.workload(plural, "shop", "web", "pg:15")
    kube.settled("shop", "web", plural=plural)
    kube.set_image("shop", "web", "pg:16-bad", plural=plural)
    kube.settled("shop", "web", plural=plural)
    api = start(make_api, kube, {"action": "rollout_undo", "kind": kind})
    done = fire(api)
    assert done["status"] == "succeeded", done
    outputs = done["steps"][0]["outputs"]
    assert (outputs["revision_before"], outputs["revision_to"], outputs["revision"]) == (2, 1, 3)
    [workload] = kube.of(plural, "shop")
    assert workload["spec"]["template"]["spec"]["containers"][0]["image"] == "pg:15"
    assert "$patch" not in json.dumps(workload)
    pods = kube.of("pods", "shop")
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"pg:15"}
    patches = [c for c in kube.calls if c[0] == "PATCH"]
    assert patches == [("PATCH", f"/apis/apps/v1/namespaces/shop/{plural}/web",
                        "application/strategic-merge-patch+json")]  # fmt: skip


def test_a_daemonset_cannot_be_scaled() -> None:
    from pydantic import ValidationError

    from app.steps.kubernetes.spec import KubernetesStep

    with pytest.raises(ValidationError, match="cannot be scaled"):
        KubernetesStep(namespace="a", name="b", kind="DaemonSet", action="scale", replicas=2)

"""`kubernetes:` steps: the four remediations most often done to a workload by hand:
roll back the bad rollout (`rollout_undo`), restart it (`rollout_restart`), scale it
(`scale`), delete its wedged Pods (`delete_pods`); then, with `wait`, until its rollout
is complete as `kubectl rollout status` judges it, or stalled (ProgressDeadlineExceeded
fails the step with the condition's message).

A step is remote (app.steps.base.RemoteExecutor): `launch` makes the one change and
keeps in its handle the generation it made, `poll` looks at the rollout by that handle,
so after a restart (kill -9 included) any replica waits for the same rollout without
changing anything again.

Guards: `scale` refuses past `max_replicas`; `delete_pods` evicts (the Eviction API, so
the cluster itself holds every PodDisruptionBudget) at most `max_pods`, stopping at the
first the budget refuses. A payload may fill `namespace` and `name` (each one Kubernetes
name) and the values of `selector` (each one label value), checked by the sinks; nothing
else. A shadow run sends the same requests with `dryRun=All` and says what would change.

Client: lightkube (0.x): built on httpx, as every other engine call of this service is,
typed, with kubeconfig, service-account and token configurations; its 1.x moved to a
fork of httpx, which would put two HTTP stacks in one process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from lightkube import Client
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import (
    ControllerRevision,
    DaemonSet,
    Deployment,
    ReplicaSet,
    StatefulSet,
)
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from app.config.sections import KubeCluster
from app.config.settings import Settings
from app.errors import ExecutorError
from app.fields.sinks import kube_name, label_value
from app.fields.templating import render_text
from app.gitops.records import Records
from app.steps.base import (
    KindDefaults,
    Remote,
    StepInput,
    StepResult,
    StepStatus,
    chosen,
    engine_result,
    refused_now,
    shadowed,
    strings_in,
    with_outputs,
)
from app.steps.kubernetes.rollout import revision, rollout_state, undo, undo_revisioned
from app.steps.kubernetes.spec import KubernetesStep

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
WORKLOADS: dict[str, Any] = {"Deployment": Deployment, "StatefulSet": StatefulSet,
                             "DaemonSet": DaemonSet}  # fmt: skip


class KubernetesKind(KindDefaults):
    name = "kubernetes"
    spec_model = KubernetesStep

    def templates(self, spec: KubernetesStep) -> Iterator[tuple[str, str]]:
        yield "namespace", spec.namespace
        yield "name", spec.name
        yield from strings_in(spec.selector, "selector")

    def render(self, spec: KubernetesStep, context: Mapping[str, Any]) -> dict[str, Any]:
        rendered = spec.model_dump(mode="json")
        rendered["namespace"] = kube_name(render_text(spec.namespace, context), "namespace", 63)
        rendered["name"] = kube_name(render_text(spec.name, context), "name")
        rendered["selector"] = {
            key: label_value(render_text(value, context), f"selector.{key}")
            for key, value in spec.selector.items()
        }
        return rendered

    def variables(self, spec: KubernetesStep) -> Mapping[str, Any]:
        return spec.selector

    def executor(self, settings: Settings, _records: Records) -> KubernetesExecutor | None:
        clusters = settings.kubernetes_clusters
        return KubernetesExecutor(clusters) if clusters else None


class KubernetesExecutor:
    kind = "kubernetes"
    dry_runs = True  # the same requests with dryRun=All

    def __init__(self, clusters: Mapping[str, KubeCluster]) -> None:
        self.clusters = dict(clusters)
        self.poll_interval_s = min(c.poll_interval_s for c in self.clusters.values())
        self._clients: dict[str, Client] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ what it acts on

    def _cluster(self, spec: Mapping[str, Any]) -> str:
        name = chosen(self.clusters, spec.get("cluster"))
        if name is None:
            known = ", ".join(sorted(self.clusters))
            raise ExecutorError(
                f"kubernetes cluster {spec.get('cluster')!r} is not configured ({known})"
            )
        return name

    def _cluster_named(self, spec: Mapping[str, Any]) -> str:
        """The cluster as a target names it (the step's word when it is not configured:
        the step then fails saying so)."""
        return chosen(self.clusters, spec.get("cluster")) or str(spec.get("cluster") or "?")

    def targets(self, spec: dict[str, Any]) -> list[str]:
        cluster = self._cluster_named(spec)
        return [f"{cluster}/{spec['namespace']}/{spec['kind']}/{spec['name']}"]

    def preview(self, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "cluster": self._cluster_named(spec),
            "action": spec["action"],
            "workload": f"{spec['namespace']}/{spec['kind']}/{spec['name']}",
        }

    def client(self, cluster: str) -> Client:
        with self._lock:
            if cluster not in self._clients:
                config = self.clusters[cluster]
                self._clients[cluster] = Client(
                    _config(config),
                    trust_env=False,
                    timeout=httpx.Timeout(config.request_timeout_s),
                )
            return self._clients[cluster]

    # ------------------------------------------------------------------ the change

    def launch(self, step: StepInput) -> Remote:
        spec = step.spec
        cluster = self._cluster(spec)
        handle: dict[str, Any] = {
            "cluster": cluster,
            "namespace": spec["namespace"],
            "kind": spec.get("kind", "Deployment"),
            "name": spec["name"],
            "action": spec["action"],
        }
        try:
            return _Change(self.client(cluster), spec, handle, step.shadow).make()
        except ApiError as exc:
            return Remote(handle, None, ended=_refused_by_api(exc, handle))
        except httpx.HTTPError as exc:
            raise ExecutorError(f"kubernetes cluster {cluster}: {exc}") from exc

    def poll(self, _step: StepInput, handle: dict[str, Any]) -> Remote:
        try:
            client = self.client(handle["cluster"])
            resource = WORKLOADS[handle.get("kind", "Deployment")]
            found = _plain(client.get(resource, handle["name"], namespace=handle["namespace"]))
        except ApiError as exc:
            return Remote(handle, None, ended=_refused_by_api(exc, handle))
        except httpx.HTTPError as exc:
            raise ExecutorError(f"kubernetes cluster {handle['cluster']}: {exc}") from exc
        state, said = rollout_state(found, int(handle["generation"]))
        if state == "waiting":
            return Remote(handle, None)
        looked = _Change(client, handle, handle, shadow=False)
        outputs = {**handle.get("found", {}), "revision": looked.revision_of(found)}
        if "replicas" in found["spec"]:
            outputs["replicas"] = int(found["spec"]["replicas"])
        status: StepStatus = "succeeded" if state == "done" else "failed"
        said = f"{handle['said']}; {said}" if handle.get("said") else said
        ended = engine_result(status, what=_what(handle), engine_status=said, url=None)
        return Remote(handle, None, ended=with_outputs(ended, outputs))

    def cancel(self, _step: StepInput, handle: dict[str, Any], status: StepStatus) -> Remote:
        # A change the cluster took cannot be taken back by stopping: the wait ends.
        said = "no longer waited for (the change was made)"
        return Remote(
            handle,
            None,
            ended=engine_result(status, what=_what(handle), engine_status=said, url=None),
        )


class _Change:
    """One step's change, made (or, in a shadow, dry-run) on one cluster."""

    def __init__(
        self, client: Client, spec: Mapping[str, Any], handle: dict[str, Any], shadow: bool
    ) -> None:
        self.client, self.spec, self.handle, self.shadow = client, spec, handle, shadow
        self.namespace, self.name = str(spec["namespace"]), str(spec["name"])
        self.resource = WORKLOADS[str(spec.get("kind", "Deployment"))]

    def make(self) -> Remote:
        started = datetime.now(UTC)
        deployment = _plain(self.client.get(self.resource, self.name, namespace=self.namespace))
        before: dict[str, Any] = {"revision_before": self.revision_of(deployment)}
        if "replicas" in deployment["spec"]:
            before["replicas_before"] = int(deployment["spec"]["replicas"])
        done = getattr(self, f"_{self.spec['action']}")(deployment)
        if isinstance(done, StepResult):
            return Remote(self.handle, None, ended=done)
        said, made, found = done
        found = {**before, **found}
        if self.shadow:
            return Remote(
                self.handle,
                None,
                ended=with_outputs(
                    shadowed("would change", f"{_what(self.handle)}: {said}", started=started),
                    found,
                ),
            )
        handle = {**self.handle, "generation": made, "found": found, "said": said}
        if not self.spec.get("wait", True):
            ended = engine_result("succeeded", what=_what(handle), engine_status=said, url=None)
            return Remote(handle, None, ended=with_outputs(ended, found))
        return Remote(handle, None)

    def _owned(self, workload: dict[str, Any], resource: Any) -> list[dict[str, Any]]:
        """The workload's own ReplicaSets or ControllerRevisions (by its selector, then
        by the controller owner reference, as kubectl finds them)."""
        selector = workload["spec"]["selector"].get("matchLabels") or {}
        uid = workload["metadata"]["uid"]
        listed = [_plain(found) for found in self.client.list(resource, namespace=self.namespace,
                                                               labels=selector)]  # fmt: skip
        return [item for item in listed
                if any(o.get("uid") == uid and o.get("controller")
                       for o in item["metadata"].get("ownerReferences") or [])]  # fmt: skip

    def revision_of(self, workload: dict[str, Any]) -> int:
        """The workload's current revision (a Deployment's annotation; the newest of a
        StatefulSet's or DaemonSet's ControllerRevisions)."""
        if self.resource is Deployment:
            return revision(workload)
        return max((int(r["revision"]) for r in self._owned(workload, ControllerRevision)),
                   default=0)  # fmt: skip

    def _rollout_undo(self, deployment: dict[str, Any]) -> Any:
        if self.resource is not Deployment:
            return self._undo_revisioned(deployment)
        selector = deployment["spec"]["selector"].get("matchLabels") or {}
        uid = deployment["metadata"]["uid"]
        listed = [_plain(rs) for rs in self.client.list(ReplicaSet, namespace=self.namespace,
                                                         labels=selector)]  # fmt: skip
        owned = [rs for rs in listed
                 if any(o.get("uid") == uid and o.get("controller")
                        for o in rs["metadata"].get("ownerReferences") or [])]  # fmt: skip
        found = undo(deployment, owned, self.spec.get("to_revision"))
        if isinstance(found, str):
            return refused_now(f"{_what(self.handle)}: {found}", "rollout_history")
        patched = _plain(self.client.patch(Deployment, self.name, found.patch,
                                           namespace=self.namespace, patch_type=PatchType.JSON,
                                           dry_run=self.shadow))  # fmt: skip
        said = f"rolled back from revision {found.current} to revision {found.target}"
        return said, patched["metadata"]["generation"], {"revision_to": found.target}

    def _undo_revisioned(self, workload: dict[str, Any]) -> Any:
        """A StatefulSet's or DaemonSet's undo, as kubectl's: the ControllerRevision's own
        strategic merge patch."""
        found = undo_revisioned(workload, self._owned(workload, ControllerRevision),
                                self.spec.get("to_revision"))  # fmt: skip
        if isinstance(found, str):
            return refused_now(f"{_what(self.handle)}: {found}", "rollout_history")
        patch, current, target = found
        patched = _plain(self.client.patch(
            self.resource, self.name, patch, namespace=self.namespace,
            patch_type=PatchType.STRATEGIC, dry_run=self.shadow,
        ))  # fmt: skip
        said = f"rolled back from revision {current} to revision {target}"
        return said, patched["metadata"]["generation"], {"revision_to": target}

    def _rollout_restart(self, _deployment: dict[str, Any]) -> Any:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}
        patched = _plain(self.client.patch(
            self.resource, self.name, patch, namespace=self.namespace,
            patch_type=PatchType.STRATEGIC, dry_run=self.shadow,
        ))  # fmt: skip
        return f"restarted at {now}", patched["metadata"]["generation"], {"restarted_at": now}

    def _scale(self, deployment: dict[str, Any]) -> Any:
        current = int(deployment["spec"].get("replicas", 1))
        asked = self.spec["replicas"]
        wanted = current + int(asked) if isinstance(asked, str) else int(asked)
        most = int(self.spec.get("max_replicas") or 20)
        if not 0 <= wanted <= most:
            return refused_now(
                f"{_what(self.handle)}: {wanted} replicas is outside 0..{most} (max_replicas)",
                "max_replicas",
            )
        self.client.patch(
            self.resource.Scale,
            self.name,
            {"spec": {"replicas": wanted}},
            namespace=self.namespace,
            patch_type=PatchType.MERGE,
            dry_run=self.shadow,
        )
        generation = self.client.get(self.resource, self.name, namespace=self.namespace).metadata
        made = int(generation.generation or 0) if generation is not None else 0
        return f"scaled from {current} to {wanted} replicas", made, {"replicas_to": wanted}

    def _delete_pods(self, deployment: dict[str, Any]) -> Any:
        labels = {
            **(deployment["spec"]["selector"].get("matchLabels") or {}),
            **self.spec.get("selector", {}),
        }
        pods = sorted(
            p.metadata.name
            for p in self.client.list(Pod, namespace=self.namespace, labels=labels)
            if p.metadata is not None and p.metadata.name
        )
        evicted: list[str] = []
        refused = None
        for pod in pods[: int(self.spec.get("max_pods") or 1)]:
            eviction = Pod.Eviction(metadata=ObjectMeta(name=pod, namespace=self.namespace))
            try:
                self.client.create(
                    eviction, name=pod, namespace=self.namespace, dry_run=self.shadow
                )
            except ApiError as exc:
                if exc.status.code != 429:
                    raise
                refused = exc.status.message
                break
            evicted.append(pod)
        if not evicted:
            why = refused or f"no Pod of it matches {labels}"
            return refused_now(
                f"{_what(self.handle)}: nothing evicted: {why}",
                "pod_disruption_budget" if refused else "no_pods",
            )
        said = f"evicted {len(evicted)} Pod(s): {', '.join(evicted)}"
        if refused:
            said += f"; stopped at the PodDisruptionBudget ({refused})"
        generation = int(deployment["metadata"].get("generation") or 0)
        return said, generation, {"pods_deleted": evicted}


def _plain(found: Any) -> dict[str, Any]:
    """An object lightkube gave, as the JSON the API sent (its models are untyped)."""
    plain: dict[str, Any] = found.to_dict()
    return plain


def _what(handle: Mapping[str, Any]) -> str:
    return (
        f"{handle['action']} of {handle.get('kind', 'Deployment')} "
        f"{handle['namespace']}/{handle['name']} on {handle['cluster']}"
    )


def _refused_by_api(exc: ApiError, handle: Mapping[str, Any]) -> StepResult:
    """An answer of the API that no retry changes (not found, forbidden, invalid)."""
    status = exc.status
    said = f"{status.code} {status.reason}: {status.message}"
    hint = " (the service account's Role must allow it)" if status.code == 403 else ""
    return engine_result("failed", what=_what(handle), engine_status=said + hint, url=None)


def _config(cluster: KubeCluster) -> Any:
    if cluster.in_cluster:
        return KubeConfig.from_service_account()
    if cluster.kubeconfig is not None:
        return KubeConfig.from_file(cluster.kubeconfig).get(context_name=cluster.context)
    token = cluster.token.get_secret_value() if cluster.token is not None else ""
    server: dict[str, Any] = {"server": cluster.url}
    if cluster.ca_file:
        server["certificate-authority"] = cluster.ca_file
    return KubeConfig.from_dict(
        {
            "clusters": [{"name": "c", "cluster": server}],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c",
        }
    ).get()

"""A stand-in Kubernetes API server on a loopback port, with the semantics a rollout
needs, so that both remediator's `kubernetes` steps and Debian's `kubectl` can be pointed
at it (there is no cluster on these machines).

It keeps Deployments, ReplicaSets, StatefulSets, DaemonSets, ControllerRevisions, Pods and
PodDisruptionBudgets in memory, each as the JSON the API serves, and a controller loop (a
thread) does what the cluster's would (a StatefulSet's and a DaemonSet's revisions are
ControllerRevisions holding their template as a strategic merge patch, their Pods
replaced one at a time; DaemonSets run on three nodes):

- a Deployment's pod template is hashed (`pod-template-hash`); a template no ReplicaSet
  has gets a new one, and the ReplicaSet of the current template carries the newest
  `deployment.kubernetes.io/revision` (a rollback moves an old one to the front, as the
  deployment controller does); `metadata.generation` moves with every change of the spec,
  `status.observedGeneration` once the controller saw it;
- replicas move over time (one Pod more on the new ReplicaSet, then one less on the old,
  every `step_s`); a Pod is Ready `ready_s` after it was made, unless its image ends in
  `:broken` (it never is: the rollout stalls, and past `progressDeadlineSeconds` its
  Progressing condition says ProgressDeadlineExceeded);
- an eviction (`pods/{name}/eviction`) is refused with 429 when a PodDisruptionBudget
  allows no more disruptions, as the Eviction API does;
- `dryRun=All` answers what a change would give without keeping it.

It serves what kubectl needs for `get`, `rollout history`, `rollout status` (list, then
watch) and `rollout undo` (a JSON patch of the template): the discovery documents, lists
with label and field selectors, watches, JSON/merge/strategic-merge patches and the
`scale` subresource. Every object it keeps and answers is checked against the Kubernetes
JSON schemas (kubernetes-validate, the newest version it has); what fails is kept in
`violations`.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import jsonpatch
import kubernetes_validate

from tests.support.loopback import LoopbackStandIn, StandInHandler, answer_json
from tests.support.tls import self_signed, server_context

KUBE_TOKEN = "kube-token-for-remediator-0001"
REVISION = "deployment.kubernetes.io/revision"
HASH = "pod-template-hash"
SCHEMA_VERSION = kubernetes_validate.latest_version()


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES = {
    r.plural: r
    for r in (
        Resource("", "v1", "pods", "Pod", ("eviction",)),
        Resource("apps", "v1", "deployments", "Deployment", ("scale",)),
        Resource("apps", "v1", "replicasets", "ReplicaSet"),
        Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"),
        Resource("apps", "v1", "statefulsets", "StatefulSet", ("scale",)),
        Resource("apps", "v1", "daemonsets", "DaemonSet"),
        Resource("apps", "v1", "controllerrevisions", "ControllerRevision"),
    )
}
# The nodes a DaemonSet runs a Pod on.
NODES = ("node-1", "node-2", "node-3")
REVISION_HASH = "controller-revision-hash"
SHORT = {"pods": ["po"], "deployments": ["deploy"], "replicasets": ["rs"],
         "poddisruptionbudgets": ["pdb"], "statefulsets": ["sts"], "daemonsets": ["ds"]}  # fmt: skip
PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[a-z.]+)/(?P<version>v1))"
    r"(?:/namespaces/(?P<namespace>[a-z0-9-]+))?/(?P<plural>[a-z]+)"
    r"(?:/(?P<name>[a-z0-9.-]+))?(?:/(?P<sub>scale|eviction))?$"
)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class KubeStandIn(LoopbackStandIn):
    """`deployment(...)` and `budget(...)` set a namespace up; `objects` is the cluster."""

    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    ca_file: Path | None = None
    kubeconfig: Path | None = None
    # How the controller moves: one replica every step_s; a Pod Ready after ready_s.
    step_s: float = 0.1
    ready_s: float = 0.2
    # Every call, as (method, path, content-type), for tests that count patches.
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    handler_name: ClassVar[str] = "kube"
    _rv: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _stop: threading.Event = field(default_factory=threading.Event)
    _made: dict[str, float] = field(default_factory=dict)  # pod name → when it was made
    _last_step: dict[str, float] = field(default_factory=dict)
    _progress: dict[str, float] = field(default_factory=dict)  # deployment → last progress

    def handler_class(self) -> type[StandInHandler]:
        return _Handler

    def start(self) -> None:
        super().start()
        self._stop.clear()
        threading.Thread(target=self._control, daemon=True, name="kube-controller").start()

    def stop(self) -> None:
        self._stop.set()
        super().stop()

    # ------------------------------------------------------------------ setting up

    def deployment(self, namespace: str, name: str, image: str, replicas: int = 3,
                   progress_deadline_s: int = 600) -> dict[str, Any]:  # fmt: skip
        labels = {"app": name}
        body = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "replicas": replicas, "selector": {"matchLabels": labels},
                "progressDeadlineSeconds": progress_deadline_s,
                "revisionHistoryLimit": 10,
                "strategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "template": {"metadata": {"labels": labels},
                             "spec": {"containers": [{"name": name, "image": image}]}},
            },
        }  # fmt: skip
        with self.lock:
            made = self._create(RESOURCES["deployments"], namespace, body)
        return made

    def workload(self, plural: str, namespace: str, name: str, image: str,
                 replicas: int = 3) -> dict[str, Any]:  # fmt: skip
        """A StatefulSet or a DaemonSet (one Pod per node of NODES), rolling updates."""
        labels = {"app": name}
        spec: dict[str, Any] = {
            "selector": {"matchLabels": labels}, "revisionHistoryLimit": 10,
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": name, "image": image}]}},
        }  # fmt: skip
        status: dict[str, Any] = {"currentNumberScheduled": 0, "desiredNumberScheduled": 0,
                                  "numberMisscheduled": 0, "numberReady": 0}  # fmt: skip
        if plural == "statefulsets":
            spec |= {"replicas": replicas, "serviceName": name}
            status = {"replicas": 0}
        resource = RESOURCES[plural]
        body = {"apiVersion": "apps/v1", "kind": resource.kind,
                "metadata": {"name": name, "namespace": namespace}, "spec": spec,
                "status": status}  # fmt: skip
        with self.lock:
            return self._create(resource, namespace, body)

    def set_image(self, namespace: str, name: str, image: str,
                  plural: str = "deployments") -> None:  # fmt: skip
        """A release: the template's image changed, as `kubectl set image` does it."""
        with self.lock:
            found = self.objects[(plural, namespace, name)]
            changed = copy.deepcopy(found)
            changed["spec"]["template"]["spec"]["containers"][0]["image"] = image
            self._replace(RESOURCES[plural], found, changed)

    def budget(
        self, namespace: str, name: str, selector: dict[str, str], min_available: int
    ) -> None:
        body = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"minAvailable": min_available, "selector": {"matchLabels": selector}}}  # fmt: skip
        with self.lock:
            self._create(RESOURCES["poddisruptionbudgets"], namespace, body)

    def settled(self, namespace: str, name: str, timeout: float = 30,
                plural: str = "deployments") -> dict[str, Any]:  # fmt: skip
        """The workload once its rollout is complete (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = copy.deepcopy(self.objects[(plural, namespace, name)])
            if _complete(found) if plural == "deployments" else _revisioned_complete(found):
                return found
            time.sleep(0.05)
        return found

    def of(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(o) for (p, ns, _), o in sorted(self.objects.items())
                    if p == plural and ns == namespace]  # fmt: skip

    # ------------------------------------------------------------------ the store

    def _check(self, item: dict[str, Any]) -> None:
        try:
            kubernetes_validate.validate(item, SCHEMA_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            self.violations.append(f"{item.get('kind')} {item['metadata'].get('name')}: "
                                   f"not valid Kubernetes: {str(exc)[:300]}")  # fmt: skip

    def _create(self, resource: Resource, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        item = copy.deepcopy(body)
        meta = item.setdefault("metadata", {})
        if "generateName" in meta and "name" not in meta:
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        meta.update(namespace=namespace, uid=str(uuid.uuid4()), generation=1,
                    resourceVersion=str(next(self._rv)), creationTimestamp=now_iso())  # fmt: skip
        if resource.kind != "ControllerRevision":  # a snapshot: it has no status
            item.setdefault("status", {})
        self._check(item)
        self.objects[(resource.plural, namespace, meta["name"])] = item
        return item

    def _replace(
        self, resource: Resource, old: dict[str, Any], new: dict[str, Any]
    ) -> dict[str, Any]:
        meta = new["metadata"]
        if new.get("spec") != old.get("spec"):
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        meta["resourceVersion"] = str(next(self._rv))
        self._check(new)
        self.objects[(resource.plural, meta["namespace"], meta["name"])] = new
        return new

    def _touch(self, item: dict[str, Any]) -> None:
        item["metadata"]["resourceVersion"] = str(next(self._rv))

    # ------------------------------------------------------------------ the controller

    def _control(self) -> None:
        while not self._stop.wait(0.02):
            with self.lock:
                for key in [k for k in self.objects if k[0] == "deployments"]:
                    self._reconcile(self.objects[key])
                for key in [k for k in self.objects if k[0] in ("statefulsets", "daemonsets")]:
                    self._reconcile_revisioned(key[0], self.objects[key])
                self._budgets()

    def _owned(self, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        return self._children(deployment, "replicasets")

    def _reconcile(self, deployment: dict[str, Any]) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        name = meta["name"]
        # Equal templates are the same revision whatever empty fields a client sent (the
        # controller compares them after defaulting): kubectl's undo sends `resources: {}`.
        template = _pruned(spec["template"])
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        owned = self._owned(deployment)
        revisions = [int(rs["metadata"]["annotations"][REVISION]) for rs in owned]
        current = next((rs for rs in owned if rs["metadata"]["labels"][HASH] == digest), None)
        now = time.monotonic()
        if current is None:
            current = self._new_replicaset(deployment, digest, max(revisions, default=0) + 1)
            self._progress[name] = now
        elif int(current["metadata"]["annotations"][REVISION]) != max(revisions):
            # Rolled back to an older template: its ReplicaSet becomes the newest revision.
            current["metadata"]["annotations"][REVISION] = str(max(revisions) + 1)
            self._touch(current)
            self._progress[name] = now
        revision = current["metadata"]["annotations"][REVISION]
        if meta.setdefault("annotations", {}).get(REVISION) != revision:
            meta["annotations"][REVISION] = revision
            self._touch(deployment)
        old = [rs for rs in self._owned(deployment) if rs is not current and rs["spec"]["replicas"]]
        if now - self._last_step.get(name, 0.0) >= self.step_s:
            self._last_step[name] = now
            want = int(spec.get("replicas", 1))
            if current["spec"]["replicas"] < want:
                current["spec"]["replicas"] += 1
                self._touch(current)
            elif current["spec"]["replicas"] > want:
                current["spec"]["replicas"] -= 1
                self._touch(current)
            elif old and _ready(self, current) >= want:
                old[0]["spec"]["replicas"] -= 1
                self._touch(old[0])
        for rs in self._owned(deployment):
            self._pods_of(rs)
        self._deployment_status(deployment, current)

    def _new_replicaset(
        self, deployment: dict[str, Any], digest: str, revision: int
    ) -> dict[str, Any]:
        meta = deployment["metadata"]
        template = copy.deepcopy(deployment["spec"]["template"])
        template["metadata"].setdefault("labels", {})[HASH] = digest
        selector = copy.deepcopy(deployment["spec"]["selector"])
        selector["matchLabels"][HASH] = digest
        body = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": f"{meta['name']}-{digest}", "labels": dict(template["metadata"]["labels"]),
                "annotations": {REVISION: str(revision)},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": meta["name"], "uid": meta["uid"],
                                     "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": {"replicas": 0, "selector": selector, "template": template},
            "status": {"replicas": 0},
        }  # fmt: skip
        return self._create(RESOURCES["replicasets"], meta["namespace"], body)

    def _pods_of(self, rs: dict[str, Any]) -> None:
        namespace = rs["metadata"]["namespace"]
        uid = rs["metadata"]["uid"]
        pods = [o for (p, ns, _), o in self.objects.items()
                if p == "pods" and ns == namespace
                and any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences", []))]  # fmt: skip
        want = int(rs["spec"]["replicas"])
        for pod in pods[want:]:
            del self.objects[("pods", namespace, pod["metadata"]["name"])]
        for _ in range(want - len(pods)):
            template = rs["spec"]["template"]
            body = {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": f"{rs['metadata']['name']}-",
                             "labels": dict(template["metadata"]["labels"]),
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                  "name": rs["metadata"]["name"], "uid": uid,
                                                  "controller": True, "blockOwnerDeletion": True}]},
                "spec": copy.deepcopy(template["spec"]),
                "status": {"phase": "Pending"},
            }  # fmt: skip
            made = self._create(RESOURCES["pods"], namespace, body)
            self._made[made["metadata"]["name"]] = time.monotonic()
        for pod in self._pods(rs):
            self._ready_up(pod)
        count = _ready(self, rs)
        status = {"replicas": len(self._pods(rs)), "readyReplicas": count,
                  "availableReplicas": count, "observedGeneration": rs["metadata"]["generation"]}  # fmt: skip
        if rs["status"] != status:
            rs["status"] = status
            self._touch(rs)

    def _children(self, owner: dict[str, Any], plural: str) -> list[dict[str, Any]]:
        """The objects of `plural` that `owner` controls (by owner reference)."""
        uid = owner["metadata"]["uid"]
        return [o for (p, ns, _), o in self.objects.items()
                if p == plural and ns == owner["metadata"]["namespace"]
                and any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences", []))]  # fmt: skip

    def _pods(self, owner: dict[str, Any]) -> list[dict[str, Any]]:
        return self._children(owner, "pods")

    def _deployment_status(self, deployment: dict[str, Any], current: dict[str, Any]) -> None:
        spec, name = deployment["spec"], deployment["metadata"]["name"]
        owned = self._owned(deployment)
        total = sum(len(self._pods(rs)) for rs in owned)
        ready = sum(_ready(self, rs) for rs in owned)
        updated = len(self._pods(current))
        want = int(spec.get("replicas", 1))
        complete = updated == want and total == want and _ready(self, current) == want
        deadline = float(spec.get("progressDeadlineSeconds", 600))
        stalled = not complete and time.monotonic() - self._progress.get(name, 0) > deadline
        progressing = (
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
             "message": f'ReplicaSet "{current["metadata"]["name"]}" has timed out progressing.'}
            if stalled else
            {"type": "Progressing", "status": "True",
             "reason": "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
             "message": f'ReplicaSet "{current["metadata"]["name"]}" '
                        + ("has successfully progressed." if complete else "is progressing.")}
        )  # fmt: skip
        status = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": total, "updatedReplicas": updated, "readyReplicas": ready,
            "availableReplicas": ready, "unavailableReplicas": max(0, total - ready),
            "conditions": [
                {"type": "Available", "status": "True" if ready >= want - 1 else "False",
                 "reason": "MinimumReplicasAvailable"},
                progressing,
            ],
        }  # fmt: skip
        if deployment.get("status") != status:
            if (
                not complete
                and not stalled
                and deployment.get("status", {}).get("readyReplicas") != ready
            ):
                self._progress[name] = time.monotonic()
            deployment["status"] = status
            self._touch(deployment)

    def _reconcile_revisioned(self, plural: str, workload: dict[str, Any]) -> None:
        """A StatefulSet's or DaemonSet's controller: each template a ControllerRevision
        (an equal one moved to the newest revision, as on a rollback), its Pods replaced
        one at a time, highest ordinal first, once the others are Ready."""
        meta, spec = workload["metadata"], workload["spec"]
        namespace, name = meta["namespace"], meta["name"]
        template = _pruned(spec["template"])
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        revisions = self._children(workload, "controllerrevisions")
        newest = max((int(r["revision"]) for r in revisions), default=0)
        current = next((r for r in revisions if r["metadata"]["name"] == f"{name}-{digest}"), None)
        if current is None:
            data = {"spec": {"template": {**copy.deepcopy(spec["template"]), "$patch": "replace"}}}
            body = {
                "apiVersion": "apps/v1", "kind": "ControllerRevision",
                "metadata": {"name": f"{name}-{digest}",
                             "labels": {**spec["selector"]["matchLabels"], REVISION_HASH: f"{name}-{digest}"},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": workload["kind"],
                                                  "name": name, "uid": meta["uid"],
                                                  "controller": True, "blockOwnerDeletion": True}]},
                "data": data, "revision": newest + 1,
            }  # fmt: skip
            current = self._create(RESOURCES["controllerrevisions"], namespace, body)
        elif int(current["revision"]) != newest:
            current["revision"] = newest + 1
            self._touch(current)
        update = current["metadata"]["name"]
        pods = self._pods(workload)
        slots = ([f"{name}-{i}" for i in range(int(spec.get("replicas", 1)))]
                 if plural == "statefulsets" else list(NODES))  # fmt: skip
        by_slot = {p["spec"].get("nodeName") if plural == "daemonsets" else p["metadata"]["name"]: p
                   for p in pods}  # fmt: skip
        for slot, pod in list(by_slot.items()):
            if slot not in slots:
                del self.objects[("pods", namespace, pod["metadata"]["name"])]
        now = time.monotonic()
        if now - self._last_step.get(f"{plural}/{name}", 0.0) >= self.step_s:
            self._last_step[f"{plural}/{name}"] = now
            missing = [s for s in slots if s not in by_slot]
            stale = [s for s in reversed(slots) if s in by_slot
                     and by_slot[s]["metadata"]["labels"].get(REVISION_HASH) != update]  # fmt: skip
            if missing:
                self._revisioned_pod(plural, workload, missing[0], update)
            elif stale and all(_pod_ready(p) for p in by_slot.values()):
                del self.objects[("pods", namespace, by_slot[stale[0]]["metadata"]["name"])]
        for pod in self._pods(workload):
            self._ready_up(pod)
        pods = self._pods(workload)
        updated = sum(p["metadata"]["labels"].get(REVISION_HASH) == update for p in pods)
        ready = sum(_pod_ready(p) for p in pods)
        status = workload.get("status") or {}
        if plural == "statefulsets":
            done = updated == len(slots) == len(pods) and ready == len(slots)
            shown = {"observedGeneration": meta["generation"], "replicas": len(pods),
                     "readyReplicas": ready, "availableReplicas": ready,
                     "updatedReplicas": updated, "currentReplicas": updated if done else len(pods) - updated,
                     "updateRevision": update,
                     "currentRevision": update if done else status.get("currentRevision", update)}  # fmt: skip
        else:
            shown = {"observedGeneration": meta["generation"], "desiredNumberScheduled": len(NODES),
                     "currentNumberScheduled": len(pods), "numberMisscheduled": 0,
                     "numberReady": ready, "numberAvailable": ready,
                     "updatedNumberScheduled": updated}  # fmt: skip
        if status != shown:
            workload["status"] = shown
            self._touch(workload)

    def _revisioned_pod(
        self, plural: str, workload: dict[str, Any], slot: str, update: str
    ) -> None:
        template = workload["spec"]["template"]
        meta: dict[str, Any] = {
            "labels": {**template["metadata"]["labels"], REVISION_HASH: update},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": workload["kind"],
                                 "name": workload["metadata"]["name"], "uid": workload["metadata"]["uid"],
                                 "controller": True, "blockOwnerDeletion": True}],
        }  # fmt: skip
        spec = copy.deepcopy(template["spec"])
        if plural == "statefulsets":
            meta["name"] = slot
        else:
            meta["generateName"] = f"{workload['metadata']['name']}-"
            spec["nodeName"] = slot
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
                "status": {"phase": "Pending"}}  # fmt: skip
        made = self._create(RESOURCES["pods"], workload["metadata"]["namespace"], body)
        self._made[made["metadata"]["name"]] = time.monotonic()

    def _ready_up(self, pod: dict[str, Any]) -> None:
        image = pod["spec"]["containers"][0]["image"]
        ready = (not image.endswith(":broken")
                 and time.monotonic() - self._made.get(pod["metadata"]["name"], 0) >= self.ready_s)  # fmt: skip
        shown: dict[str, Any] = {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True" if ready else "False"}]}  # fmt: skip
        if pod["status"] != shown:
            pod["status"] = shown
            self._touch(pod)

    def _budgets(self) -> None:
        for (plural, namespace, _), budget in self.objects.items():
            if plural != "poddisruptionbudgets":
                continue
            selector = budget["spec"]["selector"]["matchLabels"]
            pods = [o for (p, ns, _), o in self.objects.items() if p == "pods" and ns == namespace
                    and selector.items() <= o["metadata"].get("labels", {}).items()]  # fmt: skip
            healthy = sum(_pod_ready(p) for p in pods)
            desired = int(budget["spec"]["minAvailable"])
            status = {"currentHealthy": healthy, "desiredHealthy": desired,
                      "disruptionsAllowed": max(0, healthy - desired), "expectedPods": len(pods),
                      "observedGeneration": budget["metadata"]["generation"]}  # fmt: skip
            if budget["status"] != status:
                budget["status"] = status
                self._touch(budget)


def _pruned(value: Any) -> Any:
    """`value` without null, empty and server-set fields (`creationTimestamp: null`)."""
    if isinstance(value, dict):
        kept = {k: _pruned(v) for k, v in value.items() if k != "creationTimestamp"}
        return {k: v for k, v in kept.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def _pod_ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod.get("status", {}).get("conditions", []))  # fmt: skip


def _ready(kube: KubeStandIn, rs: dict[str, Any]) -> int:
    return sum(_pod_ready(p) for p in kube._pods(rs))  # noqa: SLF001


def _revisioned_complete(workload: dict[str, Any]) -> bool:
    status = workload.get("status") or {}
    if status.get("observedGeneration") != workload["metadata"]["generation"]:
        return False
    if workload["kind"] == "StatefulSet":
        return bool(status.get("updateRevision") == status.get("currentRevision")
                    and status.get("readyReplicas") == workload["spec"].get("replicas", 1))  # fmt: skip
    return bool(status.get("updatedNumberScheduled") == len(NODES) == status.get("numberAvailable"))


def _complete(deployment: dict[str, Any]) -> bool:
    status, want = deployment.get("status", {}), deployment["spec"].get("replicas", 1)
    return bool(status.get("observedGeneration") == deployment["metadata"]["generation"]
                and status.get("updatedReplicas") == want == status.get("availableReplicas")
                and status.get("replicas") == want)  # fmt: skip


@contextmanager
def kube_stand_in(directory: Path, **options: Any) -> Iterator[KubeStandIn]:
    """The stand-in over TLS (kubectl sends its token to no `http://` server), its
    certificate its own CA at `ca_file`, a kubeconfig for it at `kubeconfig`."""
    cert, key = self_signed(directory)
    kube = KubeStandIn(tls=server_context(cert, key), ca_file=cert, **options)
    kube.start()
    kube.kubeconfig = directory / "kubeconfig"
    kube.kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "stand-in",
        "clusters": [{"name": "stand-in",
                      "cluster": {"server": kube.base, "certificate-authority": str(cert)}}],
        "users": [{"name": "remediator", "user": {"token": KUBE_TOKEN}}],
        "contexts": [{"name": "stand-in", "context": {"cluster": "stand-in", "user": "remediator"}}],
    }))  # fmt: skip
    try:
        yield kube
    finally:
        kube.stop()


def _matches(item: dict[str, Any], labels: str | None, fields: str | None) -> bool:
    have = item["metadata"].get("labels", {})
    for term in filter(None, (labels or "").split(",")):
        key, _, value = term.partition("=")
        if have.get(key) != value.lstrip("="):
            return False
    for term in filter(None, (fields or "").split(",")):
        key, _, value = term.partition("=")
        if key == "metadata.name" and item["metadata"]["name"] != value.lstrip("="):
            return False
    return True


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}  # fmt: skip


class _Handler(StandInHandler):
    kube: KubeStandIn

    def do_DELETE(self) -> None:  # noqa: N802
        self.answer("DELETE", self._body())

    def answer(self, method: str, raw: bytes) -> None:
        kube = self.kube
        split = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        kube.calls.append((method, split.path, self.headers.get("content-type") or ""))
        if self.headers.get("authorization") != f"Bearer {KUBE_TOKEN}":
            answer_json(self, 401, _status(401, "Unauthorized", "Unauthorized"))
            return
        if method == "GET" and self._discovery(split.path):
            return
        found = PATH.match(split.path)
        resource = RESOURCES.get(found.group("plural")) if found else None
        if found is None or resource is None or (found.group("group") or "") != resource.group:
            answer_json(
                self, 404, _status(404, "NotFound", f"the server could not find {split.path}")
            )
            return
        namespace, name, sub = found.group("namespace"), found.group("name"), found.group("sub")
        if name is None and method == "GET":
            self._list(resource, namespace, query)
            return
        if namespace is None or name is None:
            self.refuse(405, f"{method} {split.path} is not served here")
            return
        with kube.lock:
            item = kube.objects.get((resource.plural, namespace, name))
            if item is None:
                answer_json(self, 404, _status(404, "NotFound",
                                               f'{resource.plural} "{name}" not found'))  # fmt: skip
                return
            dry = query.get("dryRun") == "All"
            if sub == "scale":
                self._scale(resource, item, method, raw, dry)
            elif sub == "eviction" and method == "POST":
                self._evict(item, dry)
            elif method == "GET":
                answer_json(self, 200, item)
            elif method == "PATCH":
                self._patch(resource, item, raw, dry)
            elif method == "DELETE" and resource.plural == "pods":
                if not dry:
                    del kube.objects[("pods", namespace, name)]
                answer_json(self, 200, item)
            else:
                self.refuse(405, f"{method} on {resource.plural} is not served here")

    def _discovery(self, path: str) -> bool:
        if path == "/api":
            answer_json(self, 200, {"kind": "APIVersions", "versions": ["v1"],
                                    "serverAddressByClientCIDRs": []})  # fmt: skip
        elif path == "/apis":
            groups = sorted({r.group for r in RESOURCES.values() if r.group})
            answer_json(self, 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
                 "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"}}
                for g in groups]})  # fmt: skip
        elif path in ("/api/v1", *(f"/apis/{g}/v1" for g in {r.group for r in RESOURCES.values()})):
            group = "" if path == "/api/v1" else path.split("/")[2]
            listed = []
            for r in RESOURCES.values():
                if r.group != group:
                    continue
                listed.append({"name": r.plural, "singularName": r.kind.lower(), "namespaced": True,
                               "kind": r.kind, "shortNames": SHORT.get(r.plural, []),
                               "verbs": ["get", "list", "watch", "patch", "delete"]})  # fmt: skip
                for sub in r.subresources:
                    listed.append({"name": f"{r.plural}/{sub}", "singularName": "",
                                   "namespaced": True, "kind": "Scale" if sub == "scale" else "Eviction",
                                   "verbs": ["get", "patch", "update"] if sub == "scale" else ["create"]})  # fmt: skip
            answer_json(self, 200, {"kind": "APIResourceList", "apiVersion": "v1",
                                    "groupVersion": path.removeprefix("/apis/").removeprefix("/api/"),
                                    "resources": listed})  # fmt: skip
        elif path in ("/version",):
            answer_json(self, 200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0-standin",
                                    "platform": "linux/amd64"})  # fmt: skip
        else:
            return False
        return True

    def _list(self, resource: Resource, namespace: str | None, query: dict[str, str]) -> None:
        kube = self.kube
        if query.get("watch") in ("true", "1"):
            self._watch(resource, namespace, query)
            return
        with kube.lock:
            items = [copy.deepcopy(o) for (p, ns, _), o in sorted(kube.objects.items())
                     if p == resource.plural and (namespace is None or ns == namespace)
                     and _matches(o, query.get("labelSelector"), query.get("fieldSelector"))]  # fmt: skip
            version = str(next(kube._rv))  # noqa: SLF001
        answer_json(self, 200, {"kind": f"{resource.kind}List", "apiVersion": resource.api_version,
                                "metadata": {"resourceVersion": version}, "items": items})  # fmt: skip

    def _watch(self, resource: Resource, namespace: str | None, query: dict[str, str]) -> None:
        """Changes as a stream of JSON lines, as the API serves a watch."""
        kube = self.kube
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        seen: dict[str, str] = {}
        since = int(query.get("resourceVersion") or 0)
        deadline = time.monotonic() + min(float(query.get("timeoutSeconds") or 60), 60)
        try:
            while time.monotonic() < deadline and not kube._stop.is_set():  # noqa: SLF001
                with kube.lock:
                    items = [copy.deepcopy(o) for (p, ns, _), o in sorted(kube.objects.items())
                             if p == resource.plural and (namespace is None or ns == namespace)
                             and _matches(o, query.get("labelSelector"), query.get("fieldSelector"))]  # fmt: skip
                for item in items:
                    name, version = item["metadata"]["name"], item["metadata"]["resourceVersion"]
                    if seen.get(name) == version or int(version) <= since:
                        continue
                    kind = "MODIFIED" if name in seen or since else "ADDED"
                    seen[name] = version
                    line = json.dumps({"type": kind, "object": item}).encode() + b"\n"
                    self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                    self.wfile.flush()
                time.sleep(0.05)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _patch(self, resource: Resource, item: dict[str, Any], raw: bytes, dry: bool) -> None:
        kind = (self.headers.get("content-type") or "").split(";")[0]
        try:
            patch = json.loads(raw)
            if kind == "application/json-patch+json":
                changed = jsonpatch.apply_patch(item, patch)
            elif kind in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                changed = _merge(copy.deepcopy(item), patch)
            else:
                self.refuse(415, f"patch type {kind!r} is not served here")
                return
        except (ValueError, jsonpatch.JsonPatchException) as exc:
            answer_json(self, 422, _status(422, "Invalid", f"the patch does not apply: {exc}"))
            return
        answer_json(self, 200, changed if dry else self.kube._replace(resource, item, changed))  # noqa: SLF001

    def _scale(self, resource: Resource, item: dict[str, Any], method: str, raw: bytes,
               dry: bool) -> None:  # fmt: skip
        if method in ("PATCH", "PUT"):
            body = json.loads(raw)
            replicas = int(body.get("spec", {}).get("replicas", item["spec"]["replicas"]))
            changed = copy.deepcopy(item)
            changed["spec"]["replicas"] = replicas
            if not dry:
                item = self.kube._replace(resource, item, changed)  # noqa: SLF001
            else:
                item = changed
        elif method != "GET":
            self.refuse(405, f"{method} on scale is not served here")
            return
        meta = item["metadata"]
        selector = ",".join(f"{k}={v}" for k, v in item["spec"]["selector"]["matchLabels"].items())
        answer_json(self, 200, {
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
                         "resourceVersion": meta["resourceVersion"]},
            "spec": {"replicas": item["spec"]["replicas"]},
            "status": {"replicas": item.get("status", {}).get("replicas", 0), "selector": selector},
        })  # fmt: skip

    def _evict(self, pod: dict[str, Any], dry: bool) -> None:
        kube = self.kube
        meta = pod["metadata"]
        for (plural, namespace, _), budget in kube.objects.items():
            selector = budget.get("spec", {}).get("selector", {}).get("matchLabels", {})
            if (plural == "poddisruptionbudgets" and namespace == meta["namespace"]
                    and selector.items() <= meta.get("labels", {}).items()
                    and budget["status"].get("disruptionsAllowed", 0) < 1):  # fmt: skip
                answer_json(self, 429, _status(
                    429, "TooManyRequests",
                    "Cannot evict pod as it would violate the pod's disruption budget."))  # fmt: skip
                return
        if not dry:
            del kube.objects[("pods", meta["namespace"], meta["name"])]
            # The budget counts the pod gone at once, as the API server's does.
            for (plural, namespace, _), budget in kube.objects.items():
                selector = budget.get("spec", {}).get("selector", {}).get("matchLabels", {})
                if (plural == "poddisruptionbudgets" and namespace == meta["namespace"]
                        and selector.items() <= meta.get("labels", {}).items()):  # fmt: skip
                    budget["status"]["disruptionsAllowed"] -= 1
        answer_json(self, 201, _status(201, "", "") | {"status": "Success"})


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 merge patch (a strategic merge patch of the fields a rollout restart and
    a scale touch is the same)."""
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and value.get("$patch") == "replace":
            # A strategic merge patch's whole replacement (a ControllerRevision's data).
            target[key] = {k: v for k, v in value.items() if k != "$patch"}
        else:
            target[key] = _merge(target.get(key), value)
    return target

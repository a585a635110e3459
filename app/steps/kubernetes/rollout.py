"""How a Deployment's rollout stands, and which revision an undo goes back to, judged as
`kubectl rollout status` and `kubectl rollout undo` judge them (k8s.io/kubectl's
DeploymentStatusViewer and DeploymentRollbacker), from the objects as the API gives them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
# The ReplicaSet annotations an undo does not carry onto the Deployment (kubectl's list).
NOT_RESTORED = frozenset(
    {
        REVISION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "kubectl.kubernetes.io/last-applied-configuration",
    }
)

State = Literal["done", "waiting", "stalled"]


def rollout_state(workload: dict[str, Any], generation: int) -> tuple[State, str]:
    """Where the rollout that made `generation` stands, and what kubectl would say."""
    kind = workload.get("kind", "Deployment")
    if kind == "StatefulSet":
        return _statefulset_state(workload, generation)
    if kind == "DaemonSet":
        return _daemonset_state(workload, generation)
    return _deployment_state(workload, generation)


def _statefulset_state(workload: dict[str, Any], generation: int) -> tuple[State, str]:
    status = workload.get("status") or {}
    if int(status.get("observedGeneration") or 0) < generation:
        return "waiting", "waiting for the statefulset's spec update to be observed"
    want = int(workload["spec"].get("replicas", 1))
    ready = int(status.get("readyReplicas") or 0)
    if ready < want:
        return "waiting", f"waiting for {want - ready} pods to be ready"
    update = status.get("updateRevision")
    if update != status.get("currentRevision"):
        return "waiting", f"waiting for the rolling update to complete: pods at revision {update}"
    return "done", f"statefulset rolling update complete: {ready} pods at revision {update}"


def _daemonset_state(workload: dict[str, Any], generation: int) -> tuple[State, str]:
    status = workload.get("status") or {}
    if int(status.get("observedGeneration") or 0) < generation:
        return "waiting", "waiting for the daemon set's spec update to be observed"
    desired = int(status.get("desiredNumberScheduled") or 0)
    updated = int(status.get("updatedNumberScheduled") or 0)
    available = int(status.get("numberAvailable") or 0)
    if updated < desired:
        return "waiting", f"{updated} out of {desired} new pods have been updated"
    if available < desired:
        return "waiting", f"{available} of {desired} updated pods are available"
    return "done", f'daemon set "{workload["metadata"]["name"]}" successfully rolled out'


def _deployment_state(deployment: dict[str, Any], generation: int) -> tuple[State, str]:
    name = deployment["metadata"]["name"]
    status = deployment.get("status") or {}
    if int(status.get("observedGeneration") or 0) < generation:
        return "waiting", "waiting for the deployment's spec update to be observed"
    progressing: dict[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), {}
    )
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        said = progressing.get("message") or "no progress"
        return "stalled", f'deployment "{name}" exceeded its progress deadline: {said}'
    want = int(deployment["spec"].get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < want:
        return "waiting", f"{updated} out of {want} new replicas have been updated"
    if total > updated:
        return "waiting", f"{total - updated} old replicas are pending termination"
    if available < updated:
        return "waiting", f"{available} of {updated} updated replicas are available"
    return "done", f'deployment "{name}" successfully rolled out'


def revision(item: dict[str, Any]) -> int:
    return int(((item.get("metadata") or {}).get("annotations") or {}).get(REVISION) or 0)


@dataclass(frozen=True)
class Undo:
    """The JSON patch that takes the Deployment back, and the revisions it moves between."""

    patch: list[dict[str, Any]]
    current: int
    target: int


def undo(deployment: dict[str, Any], owned: list[dict[str, Any]], to: int | None) -> Undo | str:
    """The undo to revision `to` (None: the one before the current), from the
    Deployment's ReplicaSets; or why there is none."""
    by_revision = {revision(rs): rs for rs in owned}
    current = max(by_revision, default=0)
    if to is None:
        earlier = [r for r in by_revision if r < current]
        if not earlier:
            return f"no earlier revision of {deployment['metadata']['name']} to go back to"
        to = max(earlier)
    if to not in by_revision:
        return f"revision {to} is not in the history (it has {sorted(by_revision)})"
    if to == current:
        return f"revision {to} is the current one already"
    template = dict(by_revision[to]["spec"]["template"])
    meta = dict(template.get("metadata") or {})
    meta["labels"] = {k: v for k, v in (meta.get("labels") or {}).items() if k != HASH_LABEL}
    template["metadata"] = meta
    annotations = {
        k: v
        for k, v in (by_revision[to]["metadata"].get("annotations") or {}).items()
        if k not in NOT_RESTORED
    }
    patch = [
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]
    return Undo(patch, current, to)


def undo_revisioned(
    workload: dict[str, Any], revisions: list[dict[str, Any]], to: int | None
) -> tuple[dict[str, Any], int, int] | str:
    """A StatefulSet's or DaemonSet's undo, as kubectl's: the strategic merge patch kept
    in the ControllerRevision of revision `to` (None: the one before the newest), and the
    revisions it moves between; or why there is none."""
    by_revision = {int(r["revision"]): r for r in revisions}
    history = sorted(by_revision)
    if not history:
        return f"no revision history of {workload['metadata']['name']}"
    current = history[-1]
    if to is None:
        if len(history) < 2:
            return f"no earlier revision of {workload['metadata']['name']} to go back to"
        to = history[-2]
    if to not in by_revision:
        return f"revision {to} is not in the history (it has {history})"
    if to == current:
        return f"revision {to} is the current one already"
    return dict(by_revision[to]["data"]), current, to

"""`kubernetes:` in a runbook, as written and as rendered."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from app.fields.duration import Duration
from app.steps.base import StepSpec

Action = Literal["rollout_undo", "rollout_restart", "scale", "delete_pods"]
# `+2`, `-1`: relative to the replicas it has now.
RELATIVE = re.compile(r"^[+-][0-9]{1,4}$")


class KubernetesStep(StepSpec):
    """What to do to one workload, and whether to wait for its rollout."""

    cluster: str | None = Field(
        default=None, description="A name in `kubernetes_clusters` (default: the only one)."
    )
    namespace: str = Field(description="Template: one Kubernetes name.")
    kind: Literal["Deployment", "StatefulSet", "DaemonSet"] = "Deployment"
    name: str = Field(description="The workload's name. Template: one Kubernetes name.")
    action: Action
    to_revision: int | None = Field(
        default=None, ge=1, description="rollout_undo: this revision (default: the one before)."
    )
    replicas: int | str | None = Field(
        default=None, description="scale: how many (`5`), or how many more or fewer (`+2`)."
    )
    max_replicas: int = Field(
        default=20, ge=1, description="scale: refused past this many (a runaway guard)."
    )
    selector: dict[str, str] = Field(
        default_factory=dict,
        description="delete_pods: which of the workload's Pods (label values are templates, "
        "each one label value).",
    )
    max_pods: int = Field(
        default=1, ge=1, description="delete_pods: at most this many Pods, one eviction each."
    )
    wait: bool = Field(default=True, description="Wait until the rollout is complete.")
    timeout: Duration = 600.0

    @model_validator(mode="after")
    def _fits_action(self) -> KubernetesStep:
        if self.action == "scale":
            if self.kind == "DaemonSet":
                raise ValueError("a DaemonSet runs one Pod per node: it cannot be scaled")
            if self.replicas is None:
                raise ValueError("scale needs replicas (`5`, or relative: `+2`)")
            if isinstance(self.replicas, str) and not RELATIVE.fullmatch(self.replicas):
                raise ValueError("replicas is a number, or +N / -N relative to now")
        elif self.replicas is not None:
            raise ValueError(f"replicas is for scale, not {self.action}")
        if self.to_revision is not None and self.action != "rollout_undo":
            raise ValueError("to_revision is for rollout_undo")
        if self.selector and self.action != "delete_pods":
            raise ValueError("selector is for delete_pods")
        return self

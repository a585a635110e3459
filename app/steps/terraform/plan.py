"""What a saved Terraform plan would do, read from `terraform show -json`, and the guard
that decides whether it may be applied.

Actions come from each `resource_changes[].change.actions` (Terraform's JSON output
format): `["create"]`, `["update"]`, `["delete"]`, a replacement as `["delete", "create"]`
or `["create", "delete"]`, `["forget"]` (removed from state, not destroyed), `["no-op"]`
and `["read"]` (data sources). A replacement destroys the resource, so `max_destroy`
counts it with the deletes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

ACTIONS = {
    ("create",): "add",
    ("update",): "change",
    ("forget",): "forget",
    ("delete",): "destroy",
    ("delete", "create"): "replace",
    ("create", "delete"): "replace",
}


@dataclass(frozen=True)
class PlanSummary:
    add: list[str] = field(default_factory=list)
    change: list[str] = field(default_factory=list)
    destroy: list[str] = field(default_factory=list)
    replace: list[str] = field(default_factory=list)
    forget: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # outputs whose value changes

    @property
    def destroys(self) -> int:
        return len(self.destroy) + len(self.replace)

    @property
    def changes_nothing(self) -> bool:
        return not (self.add or self.change or self.forget or self.outputs or self.destroys)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        """Terraform's own one-line count, then the addresses for each kind of change."""
        if self.changes_nothing:
            return "no changes"
        counts = (
            f"{len(self.add) + len(self.replace)} to add, {len(self.change)} to change, "
            f"{self.destroys} to destroy"
        )
        parts = [
            f"{kind}: {', '.join(addresses)}"
            for kind, addresses in (
                ("replace", self.replace),
                ("destroy", self.destroy),
                ("add", self.add),
                ("change", self.change),
                ("forget", self.forget),
                ("outputs", self.outputs),
            )
            if addresses
        ]
        return f"{counts} ({'; '.join(parts)})"


def summarise(plan: dict[str, Any]) -> PlanSummary:
    summary = PlanSummary()
    for change in plan.get("resource_changes") or []:
        kind = ACTIONS.get(tuple(change.get("change", {}).get("actions") or ()))
        if kind is not None:
            getattr(summary, kind).append(str(change.get("address")))
    for name, change in (plan.get("output_changes") or {}).items():
        if tuple(change.get("actions") or ()) not in (("no-op",), ()):
            summary.outputs.append(name)
    return summary


def refusal(summary: PlanSummary, max_destroy: int) -> str | None:
    """Why the guard refuses this plan, or None when it may be applied."""
    if summary.destroys <= max_destroy:
        return None
    doomed = ", ".join(summary.replace + summary.destroy)
    return (
        f"max_destroy: the plan would destroy or replace {summary.destroys} resource(s) "
        f"({doomed}), more than max_destroy {max_destroy}"
    )

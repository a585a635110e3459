"""The `ansible` step kind: what a runbook writes, how it is rendered, what runs it.

What a payload may fill: `extra_vars` (as data, tagged `!unsafe` when written for Ansible)
and `limit` (inventory names only, each checked against the inventory before anything
runs). The playbook and the inventory are runbook text, paths inside the playbooks dir.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from app.fields.templating import render_limit, render_value
from app.steps.ansible.executor import AnsibleExecutor
from app.steps.ansible.spec import AnsibleStep
from app.steps.base import Executor, KindDefaults, strings_in

if TYPE_CHECKING:
    from app.config.settings import Settings
    from app.gitops.records import Records


class AnsibleKind(KindDefaults):
    name = "ansible"
    spec_model = AnsibleStep

    def templates(self, spec: AnsibleStep) -> Iterator[tuple[str, str]]:
        if spec.limit:
            yield "limit", spec.limit
        yield from strings_in(spec.extra_vars, "extra_vars")

    def render(self, spec: AnsibleStep, context: Mapping[str, Any]) -> dict[str, Any]:
        rendered = spec.model_dump(mode="json")
        if spec.limit:
            rendered["limit"], rendered["limit_names"] = render_limit(spec.limit, context)
        rendered["extra_vars"] = render_value(spec.extra_vars, context)
        return rendered

    def variables(self, spec: AnsibleStep) -> Mapping[str, Any]:
        return spec.extra_vars

    def paths(self, spec: AnsibleStep) -> Iterator[tuple[str, str, str]]:
        yield "playbook", "playbooks_dir", spec.playbook
        if spec.inventory is not None:
            yield "inventory", "playbooks_dir", spec.inventory

    def executor(self, settings: Settings, _records: Records) -> Executor:
        return AnsibleExecutor(settings.playbooks_dir, settings.step_env)

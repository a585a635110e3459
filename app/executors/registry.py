"""The step kinds this service can run. Adding one: a module and one line here."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from app.config import Settings
from app.executors.ansible import AnsibleExecutor
from app.executors.base import Executor

EXECUTORS: Mapping[str, Callable[[Settings], Executor]] = {
    "ansible": lambda settings: AnsibleExecutor(settings.playbooks_dir),
}


def build_executors(settings: Settings) -> dict[str, Executor]:
    return {kind: make(settings) for kind, make in EXECUTORS.items()}

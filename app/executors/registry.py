"""The step kinds this service can run. Adding one: a module and one line here."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from app.config import Settings
from app.executors.ansible import AnsibleExecutor
from app.executors.base import Executor
from app.executors.terraform import TerraformExecutor
from app.store.db import Database
from app.store.versions import last_good_lookup

EXECUTORS: Mapping[str, Callable[[Settings, Database], Executor]] = {
    "ansible": lambda settings, _db: AnsibleExecutor(settings.playbooks_dir, settings.step_env),
    "terraform": lambda settings, db: TerraformExecutor(
        settings.terraform_dir,
        last_good_lookup(db),
        binary=settings.terraform_bin,
        step_env=settings.step_env,
    ),
}


def build_executors(settings: Settings, db: Database) -> dict[str, Executor]:
    return {kind: make(settings, db) for kind, make in EXECUTORS.items()}

"""What may share an Ansible run, and how a run's hosts and lines are told apart."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from app.steps.ansible.executor import AnsibleExecutor, _disjoint_rounds, _own_lines
from app.steps.ansible.inventory import inventory_listing
from tests.support.service import TEST_PLAYBOOKS


@pytest.fixture
def executor() -> AnsibleExecutor:
    return AnsibleExecutor(TEST_PLAYBOOKS)


def spec(limit: str | None, **extra_vars: str) -> dict[str, object]:
    return {"playbook": "fix.yml", "inventory": "fleet.ini", "limit": limit,
            "limit_names": [limit] if limit else [], "extra_vars": extra_vars,
            "timeout": 60.0, "forks": None}  # fmt: skip


def test_steps_that_differ_only_in_their_limit_share_a_key(executor: AnsibleExecutor) -> None:
    assert executor.batch_key(spec("web-1", why="disk")) == executor.batch_key(
        spec("web-2,web-3", why="disk")
    )
    assert executor.batch_key(spec("web-1", why="disk")) != executor.batch_key(
        spec("web-2", why="cache")
    )


@pytest.mark.parametrize("limit", [None, "", "web:&prod", "!db-1", "web-*", "~web\\d", "a[0:2]"])
def test_a_step_without_a_plain_limit_runs_alone(executor: AnsibleExecutor, limit: str) -> None:
    assert executor.batch_key(spec(limit)) is None


def test_members_sharing_a_host_go_to_separate_plays() -> None:
    rounds = _disjoint_rounds({
        0: frozenset({"a"}), 1: frozenset({"b"}), 2: frozenset({"a"}),
        3: frozenset({"c", "b"}), 4: frozenset({"d"}),
    })  # fmt: skip
    assert rounds == [[0, 1, 4], [2, 3]]


def test_a_member_sees_its_hosts_lines_and_the_plays_own() -> None:
    events = [
        {"stdout": "PLAY [fix] ****", "event_data": {}},
        {"stdout": "TASK [mark] ****", "event_data": {}},
        {"stdout": "changed: [web-1]", "event_data": {"host": "web-1"}},
        {"stdout": "fatal: [web-2]: FAILED!", "event_data": {"host": "web-2"}},
        {"stdout": "PLAY RECAP ****\nweb-1 : ok=1 failed=0\nweb-2 : ok=0 failed=1",
         "event_data": {}},
    ]  # fmt: skip
    mine = _own_lines(events, frozenset({"web-1"}), frozenset({"web-1", "web-2"}))
    assert mine.splitlines() == [
        "PLAY [fix] ****", "TASK [mark] ****", "changed: [web-1]", "PLAY RECAP ****",
        "web-1 : ok=1 failed=0",
    ]  # fmt: skip


def test_group_names_stand_for_their_hosts_children_included(tmp_path: Path) -> None:
    inventory = tmp_path / "fleet.ini"
    inventory.write_text("lone\n[web]\nweb-1\nweb-2\n[db]\ndb-1\n[prod:children]\nweb\ndb\n")
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    listing = inventory_listing(inventory, env={**os.environ, "PATH": path})
    assert listing.hosts == {"lone", "web-1", "web-2", "db-1"}
    assert listing.hosts_of(["prod"]) == {"web-1", "web-2", "db-1"}
    assert listing.hosts_of(["web", "lone", "nowhere"]) == {"web-1", "web-2", "lone"}
    assert listing.hosts_of(["all"]) == listing.hosts
    assert {"web", "db", "prod", "lone"} <= listing.names

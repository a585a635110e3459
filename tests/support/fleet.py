"""A fleet of local hosts for batched Ansible steps: a playbooks directory with an
inventory of N hosts, the runbook that batches them, and what each run left behind."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.service import runbook

# One `raw` task per host (no Python module, no per-task worker for skipped tasks), so
# 200 hosts cost seconds: what is tested is the batching, not Ansible's modules. It
# fails once on a host marked broken, and waits where the incident says (unless the
# test has released it: a file `released` in the work directory).
PLAYBOOK = """\
- name: fleet remediation
  hosts: all
  gather_facts: false
  tasks:
    - name: Note the play (once per ansible-playbook run)
      ansible.builtin.raw: "echo {{ tag }} >> {{ work }}/plays"
      run_once: true
    - name: Fix this host
      ansible.builtin.raw: >-
        if [ -e {{ work }}/broken-{{ inventory_hostname }} ]; then
        rm {{ work }}/broken-{{ inventory_hostname }}; exit 3; fi;
        [ -e {{ work }}/released ] || sleep {{ pause }};
        echo {{ inventory_hostname }} {{ tag }} >> {{ work }}/marks
"""


def fleet(directory: Path, hosts: int) -> Path:
    """A playbooks directory with the fleet playbook and an inventory of `hosts` local
    hosts, host-0 .. host-N, in the group `web`."""
    playbooks = directory / "playbooks"
    playbooks.mkdir(exist_ok=True)
    (playbooks / "fleet.yml").write_text(PLAYBOOK)
    lines = ["[web]"]
    lines += [
        f"host-{i} ansible_connection=local"
        ' ansible_python_interpreter="{{ ansible_playbook_python }}"'
        for i in range(hosts)
    ]
    (playbooks / "fleet.ini").write_text("\n".join(lines) + "\n")
    return playbooks


def fleet_runbook(work: Path, window: str = "1s", most: int = 50, **extra: Any) -> dict[str, Any]:
    step = {
        "ansible": {
            "playbook": "fleet.yml",
            "inventory": "fleet.ini",
            "limit": "{{ incident.labels.instance }}",
            "extra_vars": {
                "work": str(work),
                "tag": "{{ incident.labels.tag }}",
                "pause": "{{ incident.labels.pause }}",
            },  # fmt: skip
            "timeout": "10m",
        }
    }
    return runbook("fleet-fix", "DiskFull", step, batch={"window": window, "max": most}, **extra)


def marks(work: Path) -> Counter[str]:
    path = work / "marks"
    return (
        Counter(line.split()[0] for line in path.read_text().splitlines())
        if path.exists()
        else Counter()
    )


def plays(work: Path) -> list[str]:
    path = work / "plays"
    return path.read_text().split() if path.exists() else []

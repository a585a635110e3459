"""Who is acting, and what each role may do: the one role table.

An identity comes from a credential (an API token, a trusted SSO proxy's headers, a
Slack user id signed by Slack), never from a request body. Its `name` is what actions,
the audit log and four-eyes checks compare; `label` is how an action shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Role = Literal["viewer", "responder", "ci", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)

# What a call needs. `read`: executions, runbooks, sources, terraform versions, metrics,
# the page; `operate`: approve, reject, cancel, manual run, simulate; `record_version`:
# a terraform version known good; `administer`: reload, redelivery, the audit log.
Permission = Literal["read", "operate", "record_version", "administer"]
PERMISSIONS: tuple[Permission, ...] = get_args(Permission)

GRANTS: dict[Role, frozenset[Permission]] = {
    "viewer": frozenset({"read"}),
    "responder": frozenset({"read", "operate"}),
    "ci": frozenset({"read", "record_version"}),
    "admin": frozenset(PERMISSIONS),
}

Via = Literal["token", "sso", "slack", "cli"]

# An identity's name: recorded with what it does, compared by four-eyes approval.
IDENTITY_NAME = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}$"


def roles_granting(permission: Permission) -> list[Role]:
    """The roles that grant `permission`, narrowest first (for a 403's message)."""
    return [role for role in ROLES if permission in GRANTS[role]]


@dataclass(frozen=True)
class Identity:
    name: str
    roles: frozenset[Role]
    via: Via

    def may(self, permission: Permission) -> bool:
        return any(permission in GRANTS[role] for role in self.roles)

    @property
    def label(self) -> str:
        """As an action records it: `alice`, or `alice (via slack)` where the credential
        was not the identity's own token."""
        return self.name if self.via == "token" else f"{self.name} (via {self.via})"

    @property
    def role_names(self) -> str:
        return ",".join(sorted(self.roles)) or "none"

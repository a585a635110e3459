"""The sections of the configuration file, each a model: sources, escalation targets,
API tokens, the trusted proxy, engine connections and git hosting."""

from __future__ import annotations

import hashlib
import re
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)

from app.identity import IDENTITY_NAME, Role

MIN_TOKEN_CHARS = 16


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EntraToken(Strict):
    """Where a Microsoft Entra ID token's signing keys are (a JWKS file, or its URL, such
    as `https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys`), and what its
    issuer and audience must be."""

    jwks_file: Path | None = None
    jwks_url: str | None = Field(default=None, pattern=r"^https://[^/?#@\s]+(/[^#\s]*)?$")
    issuer: str = Field(min_length=1)
    audience: str = Field(min_length=1)

    @model_validator(mode="after")
    def _one_key_source(self) -> EntraToken:
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError("give exactly one of jwks_file, jwks_url")
        return self


class SourceConfig(Strict):
    """How one incident platform proves its calls: an HMAC `secret`, a bearer `token`, or
    the platform's own keys (`topic_arns`, `entra`). Which options a platform takes is
    checked by its source module at start-up."""

    secret: SecretStr | None = None
    token: SecretStr | None = None
    insecure: bool = False
    replay_window_s: int | None = Field(default=None, gt=0)
    # Platforms whose signature or token header is configurable on their side (Grafana's
    # HMAC option; a custom header on an Opsgenie or Datadog webhook).
    signature_header: str | None = Field(default=None, min_length=1)
    timestamp_header: str | None = Field(default=None, min_length=1)
    token_header: str | None = Field(default=None, min_length=1)
    # Grafana's HMAC without a timestamp header: nothing bounds a replayed body's age.
    allow_unstamped: bool = False
    # Platforms that sign with their own keys. Amazon SNS: the topics whose messages are
    # taken, and the host pattern its signing certificates and subscription URLs must
    # match (`ca_file`: a CA to trust beside the system's, for the keys' host).
    topic_arns: list[str] = Field(default_factory=list)
    cert_host_pattern: str | None = Field(default=None, min_length=1)
    ca_file: Path | None = None
    # Azure Monitor's secure webhook: a Microsoft Entra ID token, checked against its keys.
    entra: EntraToken | None = None

    def proves_calls(self) -> bool:
        """Whether anything here authenticates a call."""
        return any((self.secret, self.token, self.topic_arns, self.entra))


class WebhookTarget(Strict):
    url: str
    secret: SecretStr | None = None
    timeout_s: float = Field(default=10.0, gt=0)


class SlackUser(Strict):
    """A Slack user who is no API token's identity (an SSO-only team): named here."""

    name: str = Field(pattern=IDENTITY_NAME)
    roles: list[Role] = Field(min_length=1)


class SlackTarget(Strict):
    """An incoming webhook; with `signing_secret` (the Slack app's) and `users`, approval
    notices carry Approve and Reject buttons whose clicks Slack sends, signed, to
    /integrations/slack/interactions. `users` maps a Slack user id to an identity: the
    name of an `api_tokens` entry (its roles apply), or a name with its own roles.
    `response_url_prefix` is where the service may post a message update: Slack's host,
    whatever a click's `response_url` says."""

    webhook_url: SecretStr
    signing_secret: SecretStr | None = None
    users: dict[str, str | SlackUser] = Field(default_factory=dict)
    response_url_prefix: str = "https://hooks.slack.com/"
    timeout_s: float = Field(default=10.0, gt=0)


class TeamsTarget(Strict):
    """A Teams Workflows webhook ("When a Teams webhook request is received")."""

    webhook_url: SecretStr
    timeout_s: float = Field(default=10.0, gt=0)


class PagerDutyTarget(Strict):
    """Events API v2 for the page; the REST API (with `api_token` and `from_email`, the
    user the note is written as) for a note on an incident that came from PagerDuty."""

    routing_key: SecretStr
    api_token: SecretStr | None = None
    from_email: str | None = None
    events_url: str = "https://events.pagerduty.com"
    api_url: str = "https://api.pagerduty.com"
    timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _note_needs_a_user(self) -> PagerDutyTarget:
        if self.api_token is not None and not self.from_email:
            raise ValueError("`api_token` needs `from_email`: PagerDuty writes notes as a user")
        return self


class OpsgenieTarget(Strict):
    """Opsgenie's Alert API (`base_url` https://api.eu.opsgenie.com for EU accounts)."""

    api_key: SecretStr
    base_url: str = "https://api.opsgenie.com"
    responders: list[dict[str, str]] = Field(default_factory=list)
    timeout_s: float = Field(default=10.0, gt=0)


class RootlyTarget(Strict):
    """Rootly's REST API. `notification_target_*` names who an alert pages (Rootly
    On-Call): an escalation policy, a team (`Group`), a service or a user."""

    api_token: SecretStr
    base_url: str = "https://api.rootly.com"
    notification_target_type: Literal["EscalationPolicy", "Group", "Service", "User"] | None = None
    notification_target_id: str | None = None
    timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _target_whole(self) -> RootlyTarget:
        if (self.notification_target_type is None) != (self.notification_target_id is None):
            raise ValueError("set notification_target_type and notification_target_id together")
        return self


# An address as `to` and a runbook's `recipients` write it: name@domain, no display name.
Address = Annotated[str, Field(pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+$")]
SEVERITY_NAMES = Literal["critical", "high", "medium", "low", "info"]


class JiraTarget(Strict):
    """Jira Cloud (REST API v3; `email` and `api_token`) or Jira Data Center (REST API
    v2; a personal access token as `token`): a ticket per incident in `project`."""

    url: str = Field(pattern=r"^https?://[^/?#@\s]+(/[^?#\s]*)?$")
    email: str | None = None
    api_token: SecretStr | None = None
    token: SecretStr | None = None
    project: str = Field(pattern=r"^[A-Z][A-Z0-9_]{1,49}$")
    issue_type: str = Field(default="Task", min_length=1)
    labels: list[str] = Field(default_factory=lambda: ["remediator"])
    # The Jira priority name for each incident severity (unset: the project's default).
    priorities: dict[SEVERITY_NAMES, str] = Field(default_factory=dict)
    # Transitions by name, looked up on the ticket (ids differ between workflows):
    # `done_transition` on a success notice; `reopen_transition` when the incident fires
    # again after its ticket was done (not available: a new ticket).
    done_transition: str | None = "Done"
    reopen_transition: str | None = "Reopen"
    timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _one_way_in(self) -> JiraTarget:
        cloud = self.email is not None and self.api_token is not None
        if cloud == (self.token is not None) or (self.email is None) != (self.api_token is None):
            raise ValueError("give `email` and `api_token` (Cloud), or `token` (Data Center)")
        if any(not label or any(c.isspace() for c in label) for label in self.labels):
            raise ValueError("Jira labels cannot hold spaces")
        return self

    @property
    def api_version(self) -> int:
        return 3 if self.token is None else 2


class ServiceNowTarget(Strict):
    """ServiceNow's Table API: an `incident` record per incident. Basic auth
    (`username`, `password`) or OAuth client credentials (`client_id`, `client_secret`:
    an OAuth application registry entry with the client credentials grant)."""

    url: str = Field(pattern=r"^https?://[^/?#@\s]+/?$")
    username: str | None = None
    password: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    # Reference fields as their sys_id or display value (the API takes either).
    caller: str | None = None
    assignment_group: str | None = None
    category: str | None = None
    close_code: str = "Solution provided"
    timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _one_way_in(self) -> ServiceNowTarget:
        basic = self.username is not None and self.password is not None
        oauth = self.client_id is not None and self.client_secret is not None
        if basic == oauth:
            raise ValueError("give `username` and `password`, or `client_id` and `client_secret`")
        return self


class EmailTarget(Strict):
    """An SMTP server: STARTTLS (587), implicit TLS (465) or, to a loopback relay only,
    none. A message per escalation and success notice to `to` and the runbook's
    `recipients`."""

    host: str = Field(min_length=1)
    port: int = Field(default=587, gt=0, lt=65536)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    from_: Address = Field(alias="from")
    to: list[Address] = Field(default_factory=list)
    # A CA to trust beside the system's (a relay with a private certificate).
    ca_file: Path | None = None
    timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _safe(self) -> EmailTarget:
        if self.security == "none" and self.host not in ("localhost", "127.0.0.1", "::1"):
            raise ValueError("`security: none` only to a relay on this machine (localhost)")
        if (self.username is None) != (self.password is None):
            raise ValueError("give `username` and `password` together")
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ValueError(f"ca_file: no file {self.ca_file}")
        return self


class EscalationTargets(Strict):
    webhook: WebhookTarget | None = None
    slack: SlackTarget | None = None
    pagerduty: PagerDutyTarget | None = None
    opsgenie: OpsgenieTarget | None = None
    rootly: RootlyTarget | None = None
    teams: TeamsTarget | None = None
    jira: JiraTarget | None = None
    servicenow: ServiceNowTarget | None = None
    email: EmailTarget | None = None

    def configured(self) -> dict[str, BaseModel]:
        return {
            name: getattr(self, name) for name in type(self).model_fields if getattr(self, name)
        }


class ApiToken(Strict):
    """A named API token and the roles it acts with. `token_sha256` (hex) instead of
    `token` keeps the secret out of the file."""

    name: str = Field(pattern=IDENTITY_NAME)
    token: SecretStr | None = None
    token_sha256: str | None = Field(default=None, pattern="^[0-9a-fA-F]{64}$")
    roles: list[Role] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_usable_secret(self) -> ApiToken:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError(f"token {self.name!r}: give exactly one of token, token_sha256")
        if self.token is not None and len(self.token.get_secret_value()) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"token {self.name!r} is shorter than {MIN_TOKEN_CHARS} characters: "
                "too easy to guess (make one with `openssl rand -hex 32`)"
            )
        return self

    def digest(self) -> bytes:
        if self.token is not None:
            return hashlib.sha256(self.token.get_secret_value().encode()).digest()
        return bytes.fromhex(self.token_sha256 or "")


class TrustedProxy(Strict):
    """An SSO proxy in front of the service (oauth2-proxy, say) that signs people in
    and passes who they are in headers. The headers are believed only on connections
    from `cidrs`; from anywhere else they are ignored. A person's roles are those their
    groups map to in `roles` (none mapped: no role, every call 403)."""

    cidrs: list[IPv4Network | IPv6Network] = Field(min_length=1)
    user_header: str = "X-Forwarded-Email"
    groups_header: str | None = "X-Forwarded-Groups"
    roles: dict[str, Role] = Field(default_factory=dict)


API_URL = r"^https?://[^/?#@\s]+(/[^?#\s]*)?$"
# A name that is one path segment of an API URL, never `.` or `..` (no leading dot).
PATH_NAME = r"[A-Za-z0-9_-][A-Za-z0-9_.-]*"
# A git remote's name as runbooks and the config write it (no leading `-`: an option).
GIT_REMOTE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$"


class EngineConfig(Strict):
    """An automation engine that remote steps drive (AWX/AAP, HCP Terraform, GitHub,
    GitLab), under `engines.<engine>`. The engine's answers are data like a webhook's:
    `url` is the only place this service connects to for it."""

    url: str = Field(pattern=API_URL)
    token: SecretStr
    verify_tls: bool = True
    # How often a launched job is looked at; how long one call to the engine may take.
    poll_interval_s: float = Field(default=5.0, gt=0)
    request_timeout_s: float = Field(default=30.0, gt=0)


class BasicAuth(Strict):
    username: str
    password: SecretStr


class HeaderAuth(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9-]{1,100}$", examples=["X-Api-Key"])
    value: SecretStr


class HttpAuth(Strict):
    """How an HTTP endpoint knows it is us: exactly one of the three."""

    bearer: SecretStr | None = None
    basic: BasicAuth | None = None
    header: HeaderAuth | None = None

    @model_validator(mode="after")
    def _one(self) -> HttpAuth:
        if sum(x is not None for x in (self.bearer, self.basic, self.header)) != 1:
            raise ValueError("give exactly one of bearer, basic, header")
        return self


class HttpEndpoint(Strict):
    """An HTTP API that steps may call (the `http` step kind), under
    `http_endpoints.<name>`. Its scheme, host, port, base path, headers and credentials
    are configuration; a step adds a path below `url` and its query and JSON body."""

    url: str = Field(pattern=API_URL, examples=["https://flags.example.com/api/v1"])
    headers: dict[str, str] = Field(default_factory=dict)
    auth: HttpAuth | None = None
    verify_tls: bool = True
    timeout_s: float = Field(default=10.0, gt=0, description="For one call (connect, read).")


class KubeCluster(Strict):
    """A Kubernetes cluster the `kubernetes` step kind acts on, under
    `kubernetes_clusters.<name>`: a kubeconfig file (and its context), the Pod's own
    service account (`in_cluster: true`), or a URL with a token and the CA to trust."""

    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False
    url: str | None = Field(default=None, pattern=API_URL)
    token: SecretStr | None = None
    ca_file: str | None = None
    # How often a rollout is looked at while a step waits for it.
    poll_interval_s: float = Field(default=2.0, gt=0)
    request_timeout_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _one_way(self) -> KubeCluster:
        ways = [self.kubeconfig is not None, self.in_cluster, self.url is not None]
        if sum(ways) != 1:
            raise ValueError("give exactly one of kubeconfig, in_cluster: true, url (with token)")
        if self.url is not None and self.token is None:
            raise ValueError("a cluster given by url needs its token")
        return self


class CodeHostConfig(Strict):
    """A code host's API, where proposed reverts become pull or merge requests. Its
    token also authenticates the push when the remote is an HTTPS URL on the same host."""

    url: str = Field(pattern=API_URL, description="The API's base URL.")
    token: SecretStr
    verify_tls: bool = True
    request_timeout_s: float = Field(default=30.0, gt=0)

    def engine(self) -> EngineConfig:
        """The API as the engine client every remote kind uses takes it."""
        return EngineConfig(url=self.url, token=self.token, verify_tls=self.verify_tls,
                            request_timeout_s=self.request_timeout_s)  # fmt: skip


class GitHubHosting(CodeHostConfig):
    url: str = Field(
        default="https://api.github.com", pattern=API_URL,
        description="The API's base URL (GitHub Enterprise Server: https://HOST/api/v3).",
    )  # fmt: skip
    repo: str = Field(pattern=rf"^{PATH_NAME}/{PATH_NAME}$", description="owner/name")


class GitLabHosting(CodeHostConfig):
    url: str = Field(
        default="https://gitlab.com", pattern=API_URL, description="The API's base URL."
    )
    # A path (`group/subgroup/project`, percent-encoded when sent) or a numeric id.
    project: str = Field(pattern=rf"^{PATH_NAME}(/{PATH_NAME})*$")


class GitHosting(Strict):
    """`git_hosting`: the one code host whose API opens the requests (none: push only),
    and where proposals are pushed when not to the checkout's own remote."""

    github: GitHubHosting | None = None
    gitlab: GitLabHosting | None = None
    # A `propose.remote` name → the URL (or absolute path) pushed to instead of the
    # checkout's remote of that name: a checkout cloned read-only, or none configured.
    remotes: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one(self) -> GitHosting:
        if self.github is not None and self.gitlab is not None:
            raise ValueError("git_hosting: name one of github, gitlab")
        for name, url in self.remotes.items():
            if not re.fullmatch(GIT_REMOTE_NAME, name):
                raise ValueError(f"git_hosting.remotes: {name!r} is not a remote name")
            if not (re.match(r"^[a-z][a-z0-9+.-]*://\S+$", url) or url.startswith("/")
                    or re.match(r"^[\w.-]+@[\w.-]+:\S+$", url)):  # fmt: skip
                raise ValueError(
                    f"git_hosting.remotes.{name}: give a URL (https://, ssh://, file://), "
                    "user@host:path, or an absolute path"
                )
        return self


class AuthConfig(Strict):
    trusted_proxy: TrustedProxy | None = None

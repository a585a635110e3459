"""Settings, the whole configuration as one model: every key, its default and its
meaning (the configuration reference is generated from it), and the checks that span
keys. A string `env:NAME` anywhere is read from the environment variable NAME, so secrets
stay out of the file; an unset NAME is a start-up error rather than an empty secret.
Relative paths (and a relative SQLite file) are relative to the config file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SecretStr,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from typing_extensions import override

from app.config.sections import (
    ApiToken,
    AuthConfig,
    EngineConfig,
    EscalationTargets,
    GitHosting,
    HttpEndpoint,
    KubeCluster,
    SourceConfig,
)
from app.config.trust import Breaker, Budget, Freeze

ENV_PREFIX = "env:"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REMEDIATOR_", env_nested_delimiter="__", extra="forbid"
    )

    config_dir: Path = Field(default_factory=Path.cwd, exclude=True)
    runbooks_dir: Path = Field(Path("runbooks"), description="Where the runbook files are.")
    playbooks_dir: Path = Field(
        Path("playbooks"),
        description="Where the playbooks (and inventories) ansible steps name are.",
    )
    terraform_dir: Path = Field(
        Path("terraform"),
        description="Where the workdirs terraform steps name are, inside a git repository "
        "(versions are read from its history).",
    )
    terraform_bin: str = Field(
        "terraform",
        description="The Terraform binary, a name on PATH or a path; `tofu` runs OpenTofu.",
    )
    database_url: str = Field(
        "sqlite:///remediator.db",
        description="The store. `postgresql://user:pw@host/db` for several replicas; a relative "
        "SQLite file is relative to the config file.",
    )
    public_url: str = Field(
        "http://localhost:8080", description="Base of the links in escalations and notices."
    )
    api_tokens: list[ApiToken] = Field(
        default_factory=list,
        description="Named tokens with roles (`{name, token | token_sha256, roles}`) for `/api`, "
        "`/metrics` and the page; with none and no trusted proxy, `/api` is closed. A plain "
        "string (the old form) is an admin named token-N, with a warning.",
    )
    auth: AuthConfig = Field(
        default_factory=AuthConfig,
        description="`trusted_proxy: {cidrs, user_header, groups_header, roles}`: single "
        "sign-on through a proxy in front of the service.",
    )
    metrics_require_token: bool = Field(
        True,
        description="`/metrics` wants an API token like `/api` (Prometheus: `authorization` in "
        "the scrape config); false serves it to anyone who can reach the port.",
    )
    log_format: Literal["json", "text"] = Field(
        "json", description="`json`: one object a line, with the execution's context; or `text`."
    )
    # At full rate the access line was the largest single cost of a webhook after the
    # framework's; webhooks are counted and stored either way.
    access_log: bool = Field(False, description="A log line per HTTP request.")
    max_body_bytes: int = Field(
        default=1_048_576, gt=0, description="Larger webhook bodies are answered 413."
    )
    max_header_bytes: int = Field(
        default=16 * 1024, ge=1024,
        description="A request head larger than this is answered 431 while it arrives.",
    )  # fmt: skip
    max_headers: int = Field(
        default=100, ge=10, description="A request with more headers is answered 431."
    )
    # Slow-loris: a sender that dribbles bytes must not hold a connection for ever.
    body_timeout_s: float = Field(
        default=10.0, gt=0,
        description="A webhook body that has not all arrived by then is answered 408.",
    )  # fmt: skip
    replay_window_s: int = Field(
        default=300, gt=0,
        description="Timestamped signatures older or newer than this are answered 401 "
        "(a source may set its own).",
    )  # fmt: skip
    max_incidents_per_delivery: int = Field(
        default=5000, gt=0,
        description="A call carrying more incidents (alerts of a group, a generic batch) is "
        "answered 413 before any is stored.",
    )  # fmt: skip
    retention_days: float = Field(
        default=30.0, gt=0,
        description="Events, incidents and finished executions older than this are pruned, in "
        "small batches off the hot path.",
    )  # fmt: skip
    # A body older than the dedup keys could be a replay whose id is forgotten.
    dedup_retention_days: float = Field(
        default=90.0, gt=0,
        description="How long the events' dedup keys (source, delivery id, time) are kept; a "
        "body whose own time is older is refused. At least `retention_days`.",
    )  # fmt: skip
    retention_interval_s: float = Field(
        default=3600.0, gt=0, description="How often retention prunes."
    )
    sources: dict[str, SourceConfig] = Field(
        default_factory=dict,
        description="Incident platforms by name (`alertmanager`, `pagerduty`, ...): `{secret}` "
        "or `{token}` (or `insecure: true`), with optional `replay_window_s` and the "
        "header names where the platform lets you choose them.",
    )
    escalation: EscalationTargets = Field(
        default_factory=EscalationTargets,
        description="Targets by name: `webhook`, `slack`, `teams`, `rootly`, `opsgenie`, "
        "`pagerduty`.",
    )
    default_escalate: list[str] = Field(
        default_factory=list, description="Targets for runbooks whose `escalate` is empty."
    )
    # Each runs one local step at a time and mostly waits on its child process; remote
    # steps hold none while they run.
    workers: int = Field(
        default_factory=lambda: default_workers(), ge=1, le=64,
        description="Execution worker threads; by default two per core (2 to 16).",
    )  # fmt: skip
    poll_interval_s: float = Field(
        default=1.0, gt=0, description="How often an idle worker looks for work."
    )
    lease_s: float = Field(
        default=60.0, gt=0,
        description="How long a claim on an execution lasts unless renewed; a replica that "
        "died is taken over after it.",
    )  # fmt: skip
    shutdown_grace_s: float = Field(
        default=30.0, ge=0,
        description="On SIGTERM, how long running steps are given to end before they are "
        "interrupted.",
    )  # fmt: skip
    runbooks_watch_s: float = Field(
        default=0.0, ge=0,
        description="> 0: look at `runbooks_dir` this often and reload when a file changed (0: "
        "only on SIGHUP or `POST /api/runbooks/reload`).",
    )  # fmt: skip
    engines: dict[str, EngineConfig] = Field(
        default_factory=dict,
        description="Engines that remote step kinds drive, by engine name (`awx`, "
        "`terraform_cloud`, `github`, `gitlab`): `{url, token, poll_interval_s, "
        "request_timeout_s}`; a kind whose engine is missing fails its steps saying so.",
    )
    http_endpoints: dict[str, HttpEndpoint] = Field(
        default_factory=dict,
        description="HTTP APIs the `http` step kind may call, by name: `{url, headers, auth: "
        "{bearer | basic: {username, password} | header: {name, value}}, verify_tls, "
        "timeout_s}`. A step names one and adds a path, query and JSON body; where it "
        "connects and how it authenticates are only ever this.",
    )
    kubernetes_clusters: dict[str, KubeCluster] = Field(
        default_factory=dict,
        description="Clusters the `kubernetes` step kind acts on, by name: `{kubeconfig, "
        "context}`, `{in_cluster: true}` or `{url, token, ca_file}`; and `poll_interval_s` "
        "(while waiting for a rollout), `request_timeout_s`.",
    )
    git_hosting: GitHosting = Field(
        default_factory=GitHosting,
        description="Where a terraform step's `propose` opens pull or merge requests "
        "(`github: {repo, token, url}` or `gitlab: {project, token, url}`) and "
        "`remotes` (push URLs by remote name).",
    )
    drift_check_interval_s: float = Field(
        default=300.0, gt=0,
        description="How often a revert proposed in git is looked at until git says the applied "
        "version (its drift is shown until then).",
    )  # fmt: skip
    step_env: list[str] = Field(
        default_factory=list,
        description="Environment variables a step's processes get besides PATH, HOME, LANG, "
        "LC_*, TMPDIR (cloud credentials meant for playbooks, say); nothing else of the "
        "service's reaches them.",
    )
    verify_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts, addresses or networks a verify URL may reach although they resolve "
        "to loopback, link-local or a metadata service, which are refused otherwise.",
    )
    escalation_give_up_after_s: float = Field(
        default=86_400.0, gt=0, description="An escalation not delivered by then is given up."
    )
    escalation_max_backoff_s: float = Field(
        default=300.0, gt=0, description="The longest wait between an escalation's retries."
    )
    breaker: Breaker = Field(
        default_factory=Breaker,
        description="Every runbook's circuit breaker unless it names its own: after `failures` "
        "within `within` its runs are `then` until a human resets it (`{enabled: false}`: none).",
    )
    pause_mode: Literal["shadow", "approve"] = Field(
        "shadow", description="What a pause turns new runs into."
    )
    freezes: list[Freeze] = Field(
        default_factory=list,
        description='Change freezes: recurring `{name, schedule: "0 18 * * FRI", duration: 64h, '
        "timezone, runbooks, mode}` or one-off `{name, start, end, runbooks, mode}`.",
    )
    blast_radius: Budget | None = Field(
        None,
        description="`{targets: 100, per: 1h}`: at most this many targets acted on across all "
        "runbooks per window.",
    )

    @classmethod
    @override
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's contents arrive as init arguments; the environment must win over them.
        return env_settings, init_settings

    # Values read through `env:`: secret by where they came from, whatever field holds
    # them (a webhook URL with a token in it, say), so redacted like SecretStr fields.
    _env_values: list[str] = PrivateAttr(default_factory=list)
    # What the file says in a form that still works but will not for ever: logged at start.
    _deprecations: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _read_env_references(
        cls, data: Any, handler: ModelWrapValidatorHandler[Settings]
    ) -> Settings:
        found: list[str] = []
        resolved = _resolve_env(data, "", found)
        deprecations: list[str] = []
        if isinstance(resolved, dict):
            if isinstance(resolved.get("api_tokens"), list):
                resolved["api_tokens"], deprecations = _named_tokens(resolved["api_tokens"])
            deprecations += _old_spellings(resolved)
        settings = handler(resolved)
        settings._env_values = found
        settings._deprecations = deprecations
        return settings

    @model_validator(mode="after")
    def _identities_distinct(self) -> Settings:
        names = [t.name for t in self.api_tokens]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"api_tokens: names {twice} are used more than once")
        digests = [t.digest() for t in self.api_tokens]
        if len(set(digests)) != len(digests):
            raise ValueError("api_tokens: two entries have the same token")
        slack = self.escalation.slack
        if slack is not None:
            unknown = sorted(
                f"{user}: {name}" for user, name in slack.users.items()
                if isinstance(name, str) and name not in names
            )  # fmt: skip
            if unknown:
                raise ValueError(
                    f"escalation.slack.users {unknown} name no api_tokens entry: name one, "
                    "or give {name, roles}"
                )
            if slack.users and slack.signing_secret is None:
                raise ValueError("escalation.slack.users needs signing_secret to verify clicks")
        return self

    @property
    def deprecations(self) -> list[str]:
        return list(self._deprecations)

    @model_validator(mode="after")
    def _anchor_paths(self) -> Settings:
        for name in ("runbooks_dir", "playbooks_dir", "terraform_dir"):
            path: Path = getattr(self, name)
            if not path.is_absolute():
                setattr(self, name, (self.config_dir / path).resolve())
        self.database_url = _anchor_sqlite(self.database_url, self.config_dir)
        return self

    @model_validator(mode="after")
    def _dedup_outlives_retention(self) -> Settings:
        if self.dedup_retention_days < self.retention_days:
            raise ValueError(
                "dedup_retention_days must be at least retention_days: the dedup keys of "
                "pruned deliveries are what refuses their replays"
            )
        return self

    def secret_values(self) -> list[str]:
        """Every secret in the configuration, longest first, for redaction."""
        found: list[str] = list(self._env_values)
        _collect_secrets(self, found)
        return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


def default_workers() -> int:
    """Two per core, at least 2 and at most 16: a local step is a child process that
    spends most of its time waiting (on SSH, on a cloud API) after ansible-playbook's
    start-up, so one per core leaves the cores idle; more than 16 on one replica is a
    fleet's work, which wants replicas (or batched runs) rather than threads."""
    return max(2, min(16, 2 * (os.cpu_count() or 1)))


def _named_tokens(entries: list[Any]) -> tuple[list[Any], list[str]]:
    """The old `api_tokens: [secret, ...]` as named admin tokens, and a warning if any."""
    named = [
        {"name": f"token-{index}", "token": entry, "roles": ["admin"]}
        if isinstance(entry, str) else entry
        for index, entry in enumerate(entries, start=1)
    ]  # fmt: skip
    plain = [f"token-{i}" for i, entry in enumerate(entries, start=1) if isinstance(entry, str)]
    if not plain:
        return named, []
    return named, [
        f"api_tokens: plain strings are deprecated; {', '.join(plain)} act as admin. Give "
        "each a name and roles: {name: ..., token: ..., roles: [responder]}"
    ]


def _old_spellings(data: dict[str, Any]) -> list[str]:
    """Keys renamed for consistency, still read under their old names (each a warning):
    `executors` (it holds engine connections) is `engines`; a code host's `api_url` is
    `url`, as every engine's is."""
    said = []
    if "executors" in data:
        if "engines" in data:
            raise ValueError("give engines, not both engines and executors (its old name)")
        data["engines"] = data.pop("executors")
        said.append("executors: renamed engines (it holds engine connections); read as engines")
    hosting = data.get("git_hosting")
    for host in ("github", "gitlab"):
        entry = hosting.get(host) if isinstance(hosting, dict) else None
        if isinstance(entry, dict) and "api_url" in entry:
            if "url" in entry:
                raise ValueError(f"git_hosting.{host}: give url, not both url and api_url")
            entry["url"] = entry.pop("api_url")
            said.append(f"git_hosting.{host}.api_url: renamed url, as for every engine")
    return said


def _resolve_env(value: Any, where: str, found: list[str]) -> Any:
    """`value` with every `env:NAME` read from the environment; the values read are
    added to `found`."""
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        name = value[len(ENV_PREFIX) :]
        if name not in os.environ:
            raise ValueError(f"{where or 'value'}: environment variable {name} is not set")
        found.append(os.environ[name])
        return os.environ[name]
    if isinstance(value, dict):
        return {
            k: _resolve_env(v, f"{where}.{k}" if where else str(k), found) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_resolve_env(v, f"{where}[{i}]", found) for i, v in enumerate(value)]
    return value


def _anchor_sqlite(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    path = url[len(prefix) :]
    if not path or path == ":memory:" or Path(path).is_absolute():
        return url
    return prefix + str((base / path).resolve())


def _collect_secrets(value: Any, found: list[str]) -> None:
    if isinstance(value, SecretStr):
        found.append(value.get_secret_value())
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _collect_secrets(getattr(value, name), found)
    elif isinstance(value, dict):
        for item in value.values():
            _collect_secrets(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect_secrets(item, found)

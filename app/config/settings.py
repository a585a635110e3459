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
    SourceConfig,
)
from app.config.trust import Breaker, Budget, Freeze

ENV_PREFIX = "env:"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REMEDIATOR_", env_nested_delimiter="__", extra="forbid"
    )

    config_dir: Path = Field(default_factory=Path.cwd, exclude=True)
    runbooks_dir: Path = Path("runbooks")
    playbooks_dir: Path = Path("playbooks")
    terraform_dir: Path = Path("terraform")
    # `tofu` runs OpenTofu instead; found on PATH.
    terraform_bin: str = "terraform"
    database_url: str = "sqlite:///remediator.db"
    public_url: str = "http://localhost:8080"
    # Named tokens with roles; a plain string (the old form) is an admin named token-N.
    api_tokens: list[ApiToken] = Field(default_factory=list)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    # /metrics wants an API token like /api (Prometheus: `authorization` in the scrape
    # config); false serves it to anyone who can reach the port.
    metrics_require_token: bool = True
    # json: one object a line, with the execution's context, for a log pipeline.
    log_format: Literal["json", "text"] = "json"
    # A log line per HTTP request. Off: webhooks are counted (/metrics), every accepted one
    # is a stored event and every refused one a warning, and at full rate the access line
    # was the largest single cost of a webhook after the framework's.
    access_log: bool = False
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    # A request head over either limit is answered 431 while it arrives, before any work.
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    max_headers: int = Field(default=100, ge=10)
    # A webhook body that takes longer than this to arrive is refused (408): a sender that
    # dribbles bytes (slow-loris) must not hold a connection, or a request slot, for ever.
    body_timeout_s: float = Field(default=10.0, gt=0)
    replay_window_s: int = Field(default=300, gt=0)
    # A call carrying more incidents (alerts of a group, a generic batch) is refused (413)
    # before any is stored, rather than stored and planned one by one.
    max_incidents_per_delivery: int = Field(default=5000, gt=0)
    # Events, incidents and finished executions older than this are pruned, in small
    # batches off the hot path; the event rows themselves (source, delivery id, time) are
    # kept, as the dedup keys, for `dedup_retention_days`, and a body whose own time is
    # older than that is refused (it could be a replay whose id is forgotten).
    retention_days: float = Field(default=30.0, gt=0)
    dedup_retention_days: float = Field(default=90.0, gt=0)
    retention_interval_s: float = Field(default=3600.0, gt=0)
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    escalation: EscalationTargets = Field(default_factory=EscalationTargets)
    default_escalate: list[str] = Field(default_factory=list)
    # Execution workers (threads): each runs one local step at a time and mostly waits on
    # its child process; remote steps hold none while they run. By default two per core.
    workers: int = Field(default_factory=lambda: default_workers(), ge=1, le=64)
    poll_interval_s: float = Field(default=1.0, gt=0)
    lease_s: float = Field(default=60.0, gt=0)
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    # > 0: look at runbooks_dir this often and reload when a file changed (0: only on
    # SIGHUP or POST /api/runbooks/reload, which suits a deploy that restarts anyway).
    runbooks_watch_s: float = Field(default=0.0, ge=0)
    # Engines that remote step kinds drive, by engine name (awx, terraform_cloud, github,
    # gitlab); a kind whose engine is missing fails its steps saying so.
    executors: dict[str, EngineConfig] = Field(default_factory=dict)
    # Where a terraform step's `propose` opens a pull or merge request for its revert.
    git_hosting: GitHosting = Field(default_factory=GitHosting)
    # How often a revert proposed in git is looked at until git says the applied version
    # (merged): until then its execution shows the drift.
    drift_check_interval_s: float = Field(default=300.0, gt=0)
    # Environment variables a step's processes get besides PATH, HOME, LANG, LC_*, TMPDIR
    # (cloud credentials meant for playbooks, say); nothing else of the service's reaches them.
    step_env: list[str] = Field(default_factory=list)
    # Hosts (names, addresses or networks) a verify URL may reach although they resolve to
    # loopback, link-local or a metadata service, which are refused otherwise.
    verify_allowed_hosts: list[str] = Field(default_factory=list)
    escalation_give_up_after_s: float = Field(default=86_400.0, gt=0)
    escalation_max_backoff_s: float = Field(default=300.0, gt=0)
    # Every runbook's circuit breaker unless it says its own: after 3 failures within an
    # hour its runs wait for approval until a human resets it.
    breaker: Breaker = Field(default_factory=Breaker)
    # What a pause (POST /api/automation/pause) turns new runs into.
    pause_mode: Literal["shadow", "approve"] = "shadow"
    # Change freezes: recurring (cron schedule, duration, time zone) or one-off windows in
    # which the runbooks they name run in their `mode`.
    freezes: list[Freeze] = Field(default_factory=list)
    # Across all runbooks: at most this many targets acted on per window.
    blast_radius: Budget | None = None

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
        if isinstance(resolved, dict) and isinstance(resolved.get("api_tokens"), list):
            resolved["api_tokens"], deprecations = _named_tokens(resolved["api_tokens"])
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

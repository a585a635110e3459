from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from app.config.loading import load_settings
from app.config.settings import Settings
from app.errors import ConfigError
from app.sources.registry import check_sources


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conf" / "remediator.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None)
    assert settings.runbooks_dir == tmp_path / "runbooks"
    assert settings.database_url == f"sqlite:///{tmp_path}/remediator.db"
    assert settings.sources == {} and settings.max_body_bytes == 1048576


def test_paths_are_relative_to_the_file_and_env_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AM_TOKEN_X", "s3cret-token")
    path = write(tmp_path, "runbooks_dir: rb\nsources:\n  alertmanager: {token: env:AM_TOKEN_X}\n")
    settings = load_settings(path)
    assert settings.runbooks_dir == tmp_path / "conf" / "rb"
    token = settings.sources["alertmanager"].token
    assert token is not None and token.get_secret_value() == "s3cret-token"
    assert "s3cret-token" in settings.secret_values()
    assert "s3cret-token" not in repr(settings)


def test_missing_env_variable_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, "api_tokens: [env:SURELY_NOT_SET_ANYWHERE]\n")
    with pytest.raises(ConfigError, match="SURELY_NOT_SET_ANYWHERE is not set"):
        load_settings(path)


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REMEDIATOR_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("REMEDIATOR_SOURCES__GENERIC__TOKEN", "from-env")
    path = write(tmp_path, "max_body_bytes: 100\nsources:\n  generic: {insecure: true}\n")
    settings = load_settings(path)
    assert settings.max_body_bytes == 2048
    token = settings.sources["generic"].token
    assert token is not None and token.get_secret_value() == "from-env"
    assert settings.sources["generic"].insecure is True


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_body_byte"):
        load_settings(write(tmp_path, "max_body_byte: 5\n"))
    with pytest.raises(ConfigError, match="sources.generic.secrt"):
        load_settings(write(tmp_path, "sources:\n  generic: {secrt: x}\n"))


def test_source_without_secret_or_token_is_refused_unless_insecure(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "sources:\n  alertmanager: {}\n"))
    with pytest.raises(ConfigError, match="needs a `secret` or a `token`"):
        check_sources(settings)
    settings = load_settings(write(tmp_path, "sources:\n  alertmanager: {insecure: true}\n"))
    assert "INSECURE" in check_sources(settings)[0]


def test_source_config_is_checked_by_its_platform(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="token"):
        check_sources(load_settings(write(tmp_path, "sources:\n  alertmanager: {secret: abc}\n")))
    with pytest.raises(ConfigError, match="base64"):
        check_sources(load_settings(write(tmp_path, "sources:\n  generic: {secret: 'whsec_!!'}\n")))
    with pytest.raises(ConfigError, match="unknown source"):
        check_sources(load_settings(write(tmp_path, "sources:\n  nagios: {token: t}\n")))


def test_values_read_through_env_are_redacted_whatever_field_holds_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOOK_URL", "https://hooks.example/T0K3N-in-the-path")
    path = write(tmp_path, "escalation:\n  webhook: {url: env:HOOK_URL}\n")
    settings = load_settings(path)
    assert settings.escalation.webhook is not None
    assert settings.escalation.webhook.url == "https://hooks.example/T0K3N-in-the-path"
    assert "https://hooks.example/T0K3N-in-the-path" in settings.secret_values()
    assert (
        "https://hooks.example/T0K3N-in-the-path"
        not in load_settings(
            write(
                tmp_path, "escalation:\n  webhook: {url: https://hooks.example/T0K3N-in-the-path}\n"
            )
        ).secret_values()
    )


def test_named_tokens_with_roles_and_the_old_list(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"dashboards-token-0123").hexdigest()
    settings = load_settings(write(tmp_path, f"""
api_tokens:
  - {{name: alice, token: alice-token-0123456, roles: [responder]}}
  - {{name: dashboards, token_sha256: {digest}, roles: [viewer]}}
"""))  # fmt: skip
    assert [(t.name, t.roles) for t in settings.api_tokens] == [
        ("alice", ["responder"]),
        ("dashboards", ["viewer"]),
    ]
    assert settings.api_tokens[1].digest() == hashlib.sha256(b"dashboards-token-0123").digest()
    assert settings.deprecations == []
    old = load_settings(write(tmp_path, "api_tokens: [first-token-0123456, second-token-012345]\n"))
    assert [(t.name, t.roles) for t in old.api_tokens] == [
        ("token-1", ["admin"]),
        ("token-2", ["admin"]),
    ]
    [warning] = old.deprecations
    assert "token-1, token-2 act as admin" in warning


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("api_tokens: [short-token]\n", "shorter than 16 characters"),
        ("api_tokens: [{name: a, roles: [viewer]}]\n", "exactly one of token, token_sha256"),
        ("api_tokens: [{name: a, token: aaaaaaaaaaaaaaaaaaaa, roles: [root]}]\n", "roles"),
        (
            "api_tokens: [{name: a, token: aaaaaaaaaaaaaaaaaaaa, roles: [viewer]},"
            " {name: a, token: bbbbbbbbbbbbbbbbbbbb, roles: [viewer]}]\n",
            "used more than once",
        ),
        (
            "api_tokens: [{name: a, token: aaaaaaaaaaaaaaaaaaaa, roles: [viewer]},"
            " {name: b, token: aaaaaaaaaaaaaaaaaaaa, roles: [admin]}]\n",
            "the same token",
        ),
        ("api_tokens: [{name: a, token: aaaaaaaaaaaaaaaaaaaa, roles: []}]\n", "at least 1"),
        (
            "escalation: {slack: {webhook_url: 'https://hooks.slack.com/x', signing_secret: s,"
            " users: {U1: nobody}}}\n",
            "name no api_tokens entry",
        ),
        (
            "escalation: {slack: {webhook_url: 'https://hooks.slack.com/x', users: {U1: "
            "{name: carol, roles: [responder]}}}}\n",
            "needs signing_secret",
        ),
        ("auth: {trusted_proxy: {cidrs: [not-a-network]}}\n", "cidrs"),
    ],
)
def test_identity_configuration_problems_are_refused_at_start(
    tmp_path: Path, text: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_settings(write(tmp_path, text))


@pytest.mark.parametrize(("cores", "workers"), [(None, 2), (1, 2), (2, 4), (4, 8), (64, 16)])
def test_the_default_worker_pool_follows_the_machine(
    monkeypatch: pytest.MonkeyPatch, cores: int | None, workers: int
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert Settings().workers == workers
    assert Settings(workers=3).workers == 3


def test_every_setting_says_what_it_means() -> None:
    """The configuration reference is generated from these descriptions."""
    from app.config.settings import Settings

    missing = [name for name, field in Settings.model_fields.items()
               if not field.exclude and not field.description]  # fmt: skip
    assert missing == []


def test_old_spellings_still_work_and_say_their_new_names(tmp_path: Path) -> None:
    old_github = """
executors:
  awx: {url: https://awx.example.com, token: awx-token-0123456789}
git_hosting:
  github: {api_url: https://ghe.example/api/v3, repo: acme/infra, token: gh-token-0123456789}
"""
    old = load_settings(write(tmp_path, old_github))
    assert old.engines["awx"].url == "https://awx.example.com"
    assert old.git_hosting.github is not None and old.git_hosting.github.url.endswith("/api/v3")
    assert [w.split(":")[0] for w in old.deprecations] == [
        "executors",
        "git_hosting.github.api_url",
    ]
    old_gitlab = """
git_hosting:
  gitlab: {api_url: https://gitlab.example, project: acme/infra, token: gl-token-0123456789}
"""
    gitlab = load_settings(write(tmp_path, old_gitlab)).git_hosting.gitlab
    assert gitlab is not None and gitlab.url == "https://gitlab.example"
    new = load_settings(write(tmp_path, old_github.replace("executors", "engines")
                                                  .replace("api_url", "url")))  # fmt: skip
    assert new.engines == old.engines and new.deprecations == []
    for both in ("engines: {}\nexecutors: {}\n",
                 "git_hosting:\n  github: {url: https://a.example, api_url: https://b.example,"
                 " repo: a/b, token: t-0123456789abcdef}\n"):  # fmt: skip
        with pytest.raises(ConfigError, match="not both"):
            load_settings(write(tmp_path, both))

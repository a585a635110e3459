"""Reading the configuration: which file (--config, $REMEDIATOR_CONFIG, or
./remediator.yaml), YAML into `Settings`, and every mistake as one ConfigError naming
each key that is wrong."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from app.config.settings import Settings
from app.errors import ConfigError

DEFAULT_CONFIG_NAME = "remediator.yaml"


def config_path_from(explicit: str | None) -> Path | None:
    """The config file to read: --config, else $REMEDIATOR_CONFIG, else ./remediator.yaml."""
    chosen = explicit or os.environ.get("REMEDIATOR_CONFIG")
    if chosen:
        path = Path(chosen)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path.resolve()
    default = Path.cwd() / DEFAULT_CONFIG_NAME
    return default.resolve() if default.is_file() else None


def load_settings(path: Path | None) -> Settings:
    """Read the file at `path` (or only defaults and environment when None)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config {path}: the top level must be a mapping")
        data = loaded or {}
        data["config_dir"] = path.parent
    try:
        return Settings(**data)
    except ValidationError as exc:
        where = path or "defaults"
        lines = [
            f"  {'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        ]
        raise ConfigError(f"config {where} is not valid:\n" + "\n".join(lines)) from exc

"""The platforms this service understands. Adding one: a module and one line here."""

from __future__ import annotations

from collections.abc import Mapping

from app.config.settings import Settings
from app.errors import ConfigError, UnknownSource
from app.sources.alertmanager import AlertmanagerSource
from app.sources.azure_monitor import AzureMonitorSource
from app.sources.base import Source
from app.sources.cloudwatch import CloudWatchSource
from app.sources.datadog import DatadogSource
from app.sources.generic import GenericSource
from app.sources.grafana import GrafanaSource
from app.sources.incidentio import IncidentIoSource
from app.sources.opsgenie import OpsgenieSource
from app.sources.pagerduty import PagerDutySource
from app.sources.rootly import RootlySource
from app.sources.sentry import SentrySource

SOURCES: Mapping[str, Source] = {
    "generic": GenericSource(),
    "alertmanager": AlertmanagerSource(),
    "rootly": RootlySource(),
    "pagerduty": PagerDutySource(),
    "grafana": GrafanaSource(),
    "opsgenie": OpsgenieSource(),
    "datadog": DatadogSource(),
    "sentry": SentrySource(),
    "incidentio": IncidentIoSource(),
    "cloudwatch": CloudWatchSource(),
    "azure_monitor": AzureMonitorSource(),
}


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise UnknownSource(f"unknown source {name!r}") from None


def check_sources(settings: Settings) -> list[str]:
    """Refuse a configuration that would accept unauthenticated calls by accident.
    Answers the warnings to log at every start (insecure sources)."""
    warnings: list[str] = []
    for name, config in settings.sources.items():
        if name not in SOURCES:
            raise ConfigError(f"sources.{name}: unknown source (known: {', '.join(SOURCES)})")
        SOURCES[name].check_config(config)
        if config.ca_file is not None and not config.ca_file.is_file():
            raise ConfigError(f"sources.{name}.ca_file: no file {config.ca_file}")
        if not config.proves_calls():
            if not config.insecure:
                raise ConfigError(
                    f"sources.{name}: needs a `secret` or a `token` (or the platform's own "
                    "keys: `topic_arns`, `entra`) "
                    "(or `insecure: true` for a local trial)"
                )
            warnings.append(f"source {name!r} is INSECURE: it accepts unauthenticated calls")
        if config.allow_unstamped:
            warnings.append(
                f"source {name!r} accepts signatures without a timestamp (allow_unstamped): "
                "a captured body can be replayed until its delivery id is forgotten"
            )
    return warnings

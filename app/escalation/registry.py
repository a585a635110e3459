"""The escalation targets. Adding one: a module, a config model and one line here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from app.config.settings import Settings
from app.escalation.base import Notifier
from app.escalation.jira import JiraNotifier
from app.escalation.mail import EmailNotifier
from app.escalation.opsgenie import OpsgenieNotifier
from app.escalation.pagerduty import PagerDutyNotifier
from app.escalation.rootly import RootlyNotifier
from app.escalation.servicenow import ServiceNowNotifier
from app.escalation.slack import SlackNotifier
from app.escalation.teams import TeamsNotifier
from app.escalation.webhook import WebhookNotifier

NOTIFIERS: Mapping[str, Callable[[Any], Notifier]] = {
    "webhook": WebhookNotifier,
    "slack": SlackNotifier,
    "pagerduty": PagerDutyNotifier,
    "opsgenie": OpsgenieNotifier,
    "rootly": RootlyNotifier,
    "teams": TeamsNotifier,
    "jira": JiraNotifier,
    "servicenow": ServiceNowNotifier,
    "email": EmailNotifier,
}


def build_notifiers(settings: Settings) -> dict[str, Notifier]:
    """One notifier per configured target."""
    return {
        name: NOTIFIERS[name](config) for name, config in settings.escalation.configured().items()
    }

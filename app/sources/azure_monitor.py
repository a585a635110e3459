"""Azure Monitor alerts, through an action group's webhook with the common alert schema
on (`/webhooks/azure-monitor`).

Verification, one of:
- `entra` (the action group's "Secure webhook"): `Authorization: Bearer <token>`, a
  Microsoft Entra ID access token. Its RS256 signature must verify with a key of the
  configured JWKS (`jwks_file`, read again when it changes, or `jwks_url` fetched over
  verified HTTPS and cached for an hour, fetched again at most once a minute when a
  token names a key it lacks); its
  `iss` and `aud` must be the configured ones, `exp` in the future and `nbf` past (a
  minute of clock skew). The token proves who sent the call, not what the body says:
  Azure signs no body. The body's own times must be within the dedup window.
- `token` (where a team cannot register an Entra application): the plain webhook with
  `?token=<token>` in its URL, compared in constant time. Weaker: the token sits in the
  URL, where proxies and access logs may keep it.

Delivery id: a hash of the body (Azure Monitor sends no id; its retries send the same
body).

The common alert schema (`schemaId: azureMonitorCommonAlertSchema`) maps:
- `essentials.monitorCondition` `Fired` → firing (opened), `Resolved` → resolved;
- occurrence: `essentials.alertId` (one alert instance, fired then resolved);
  fingerprint: `essentials.originAlertId` (the rule on its resource, the same across
  instances), else the rule and its targets;
- title `essentials.alertRule`; severity Sev0 critical, Sev1 high, Sev2 medium, Sev3 low,
  Sev4 info; description as an annotation; start `firedDateTime`;
- labels: the rule, signal type, monitoring service, the first target's subscription,
  resource group, provider and name (`alertTargetIDs`), configuration items, the alert
  context's metric dimensions (`condition.allOf[].dimensions`) and `customProperties`.
Another `schemaId` is not this schema: 422, naming it (turn the common schema on).
"""

from __future__ import annotations

import hmac
import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jwt

from app.config.sections import EntraToken, SourceConfig
from app.errors import ConfigError, InvalidSignature, Unauthenticated, UnsupportedPayload
from app.incident import Incident, Severity, Status
from app.sources.base import (
    Delivery,
    WebhookRequest,
    allow_options,
    body_digest,
    fetch_proof,
    iso_time,
    newest,
    text,
)

SCHEMA = "azureMonitorCommonAlertSchema"
CONDITIONS: dict[str, Status] = {"Fired": "firing", "Resolved": "resolved"}
SEVERITIES: dict[str, Severity] = {
    "Sev0": "critical", "Sev1": "high", "Sev2": "medium", "Sev3": "low", "Sev4": "info",
}  # fmt: skip
_KEYS_FOR_S = 3600.0
_REFETCH_AFTER_S = 60.0
_SKEW_S = 60


class AzureMonitorSource:
    name = "azure_monitor"
    default_replay_window_s: int | None = None
    calls_out = True

    def __init__(self) -> None:
        self._keys: dict[str, tuple[float, jwt.PyJWKSet]] = {}
        self._files: dict[Path, tuple[int, jwt.PyJWKSet]] = {}
        self._lock = threading.Lock()

    def check_config(self, config: SourceConfig) -> None:
        if config.secret is not None:
            raise ConfigError(
                f"sources.{self.name}: Azure signs nothing, so no `secret`: `entra` or `token`"
            )
        if config.entra is not None and config.token is not None:
            raise ConfigError(f"sources.{self.name}: give one of `entra`, `token`")
        allow_options(self.name, config, "entra", "ca_file")
        keys = config.entra.jwks_file if config.entra is not None else None
        if keys is not None:
            if not keys.is_file():
                raise ConfigError(f"sources.{self.name}.entra.jwks_file: no file {keys}")
            _key_set(keys.read_bytes(), f"sources.{self.name}.entra.jwks_file")

    def verify(self, request: WebhookRequest, config: SourceConfig) -> None:
        if config.entra is not None:
            self._verify_token(request, config.entra, config)
            return
        if config.token is None:
            raise Unauthenticated("this source has no token configured")
        given = request.query.get("token")
        if given is None:
            raise Unauthenticated("missing ?token= in the webhook's URL")
        if not hmac.compare_digest(given.encode(), config.token.get_secret_value().encode()):
            raise Unauthenticated("the ?token= does not match")

    def sign(self, body: bytes, config: SourceConfig, now: float) -> dict[str, str]:  # noqa: ARG002
        raise ConfigError(
            "Azure Monitor proves its calls with an Entra ID token or a token in the URL: "
            "`remediator send` cannot send either; use the action group's test action"
        )

    def normalise(self, payload: Any, request: WebhookRequest) -> Delivery:
        if not isinstance(payload, dict) or payload.get("schemaId") != SCHEMA:
            schema = payload.get("schemaId") if isinstance(payload, dict) else None
            raise UnsupportedPayload(
                f"schemaId {schema!r} is not {SCHEMA}: turn on the common alert schema "
                "on the action group's webhook"
            )
        data = payload.get("data")
        essentials = data.get("essentials") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(essentials, dict):
            raise UnsupportedPayload("the common alert schema has `data.essentials`")
        alert_id, rule = text(essentials.get("alertId")), text(essentials.get("alertRule"))
        condition = text(essentials.get("monitorCondition")) or ""
        if alert_id is None or rule is None or condition not in CONDITIONS:
            raise UnsupportedPayload(
                "`data.essentials` needs alertId, alertRule and monitorCondition Fired or Resolved"
            )
        delivery_id = "sha256:" + body_digest(request.body)
        targets = [t for t in essentials.get("alertTargetIDs") or [] if isinstance(t, str)]
        labels = {**_target_labels(targets), **_context_labels(data)}
        for key, value in (("alert_rule", rule),
                           ("signal_type", text(essentials.get("signalType"))),
                           ("monitoring_service", text(essentials.get("monitoringService"))),
                           ("severity", text(essentials.get("severity")))):  # fmt: skip
            if value is not None:
                labels[key] = value
        items = [i for i in essentials.get("configurationItems") or [] if isinstance(i, str)]
        if items:
            labels["configuration_items"] = ",".join(items)
        fired = iso_time(essentials.get("firedDateTime"))
        resolved = iso_time(essentials.get("resolvedDateTime"))
        fingerprint = text(essentials.get("originAlertId")) or json.dumps([rule, sorted(targets)])
        description = text(essentials.get("description"))
        incident = Incident(
            source=self.name, delivery_id=delivery_id, event_type=f"alert.{condition.lower()}",
            received_at=request.received_at, status=CONDITIONS[condition], title=rule,
            severity=SEVERITIES.get(str(essentials.get("severity")), "medium"),
            service=labels.get("resource_name"), labels=labels,
            annotations={"description": description} if description else {},
            url=_portal(alert_id), fingerprint=fingerprint, occurrence=alert_id,
            started_at=fired, raw=payload,
        )  # fmt: skip
        return Delivery(delivery_id, incident.event_type, [incident],
                        sent_at=newest(fired, resolved))  # fmt: skip

    def _verify_token(self, request: WebhookRequest, entra: EntraToken,
                      config: SourceConfig) -> None:  # fmt: skip
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("missing Authorization: Bearer <Entra ID token>")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._key(entra, config, str(kid), request.now)
            jwt.decode(token, key, algorithms=["RS256"], audience=entra.audience,
                       issuer=entra.issuer, leeway=_SKEW_S,
                       options={"require": ["exp", "iss", "aud"]})  # fmt: skip
        except jwt.ExpiredSignatureError:
            raise InvalidSignature("the Entra ID token has expired") from None
        except jwt.PyJWTError as exc:
            raise InvalidSignature(f"the Entra ID token is not accepted: {exc}") from None

    def _file_keys(self, path: Path) -> jwt.PyJWKSet:
        """The JWKS file's keys, read again only when the file changed (a rotation)."""
        changed = path.stat().st_mtime_ns
        with self._lock:
            known = self._files.get(path)
        if known is not None and known[0] == changed:
            return known[1]
        keys = _key_set(path.read_bytes(), "entra.jwks_file")
        with self._lock:
            self._files[path] = (changed, keys)
        return keys

    def _key(self, entra: EntraToken, config: SourceConfig, kid: str, now: float) -> jwt.PyJWK:
        """The key `kid` of the configured JWKS; a URL's keys are fetched again when
        they are old, or when a token names a key they lack (Entra rotates its keys)."""
        if entra.jwks_file is not None:
            return _find(self._file_keys(entra.jwks_file), kid)
        url = entra.jwks_url or ""
        with self._lock:
            fetched_at, keys = self._keys.get(url, (0.0, None))
        fresh = now - fetched_at < _KEYS_FOR_S
        known = keys is not None and any(key.key_id == kid for key in keys.keys)
        if keys is None or not fresh or (not known and now - fetched_at >= _REFETCH_AFTER_S):
            keys = _key_set(fetch_proof(url, config.ca_file, "the Entra ID keys"), url)
            with self._lock:
                self._keys[url] = (now, keys)
        return _find(keys, kid)


def _key_set(document: bytes, where: str) -> jwt.PyJWKSet:
    try:
        return jwt.PyJWKSet.from_json(document.decode())
    except (ValueError, UnicodeDecodeError, jwt.PyJWTError) as exc:
        raise ConfigError(f"{where}: not a JWKS with usable keys ({exc})") from None


def _find(keys: jwt.PyJWKSet, kid: str) -> jwt.PyJWK:
    for key in keys.keys:
        if key.key_id == kid:
            return key
    raise InvalidSignature(f"the Entra ID token's key {kid[:64]!r} is not one of the JWKS")


def _target_labels(targets: list[str]) -> dict[str, str]:
    """The first target's parts: `/subscriptions/<id>/resourceGroups/<group>/providers/
    <namespace>/<type>/<name>`."""
    if not targets:
        return {}
    labels = {"alert_target_id": targets[0]}
    parts = targets[0].strip("/").split("/")
    pairs = {parts[i].lower(): parts[i + 1] for i in range(0, len(parts) - 1, 2)}
    for key, label in (("subscriptions", "subscription_id"), ("resourcegroups", "resource_group")):
        if key in pairs:
            labels[label] = pairs[key]
    if "providers" in (p.lower() for p in parts) and len(parts) >= 2:
        at = [p.lower() for p in parts].index("providers")
        labels["resource_provider"] = "/".join(parts[at + 1 : at + 3])
        labels["resource_name"] = parts[-1]
    return labels


def _context_labels(data: dict[str, Any]) -> dict[str, str]:
    """The metric condition's dimensions and the custom properties, as labels."""
    labels: dict[str, str] = {}
    context = data.get("alertContext")
    condition = context.get("condition") if isinstance(context, dict) else None
    criteria = condition.get("allOf") if isinstance(condition, dict) else None
    for criterion in criteria if isinstance(criteria, list) else []:
        if not isinstance(criterion, dict):
            continue
        if metric := text(criterion.get("metricName")):
            labels.setdefault("metric_name", metric)
        for dimension in criterion.get("dimensions") or []:
            if isinstance(dimension, dict):
                name, value = text(dimension.get("name")), dimension.get("value")
                if name is not None and isinstance(value, str):
                    labels[name] = value
    custom = data.get("customProperties")
    for key, value in custom.items() if isinstance(custom, dict) else []:
        if isinstance(key, str) and isinstance(value, str):
            labels[key] = value
    return labels


def _portal(alert_id: str) -> str | None:
    """The alert's page in the Azure portal."""
    if not alert_id.startswith("/subscriptions/"):
        return None
    return ("https://portal.azure.com/#blade/Microsoft_Azure_Monitoring/"
            f"AlertDetailsTemplateBlade/alertId/{quote(alert_id, safe='')}")  # fmt: skip

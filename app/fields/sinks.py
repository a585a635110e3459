r"""Where a payload value may go, and in what shape: the security model in one module.

Runbook text and configuration are trusted; everything that arrived in a webhook is data.
A value that came from an incident may fill only the part of a field that the field's
type allows, and it is checked or encoded here, never in each caller:

- `limit` (Ansible): a templated part renders to inventory names (`web-1`,
  `web-1,web-2`), never pattern syntax (`@file`, `all`, `!`, `&`, `*`, `:`, `~`, `[`);
  the names must exist in the step's inventory (checked by the executor, which has it).
- URL (`verify.http.url`): scheme, host and port are runbook text; a templated part is
  percent-encoded as one path segment or query value. The address a URL resolves to must
  not be loopback, link-local or a metadata service unless the config allows the host.
- Platform API paths (an Opsgenie alert id, a PagerDuty or Rootly incident id): checked
  against the platform's id format and percent-encoded as one segment.
- Chat markup (Slack mrkdwn): payload text escaped so it cannot mention, link or format
  (`*bold*`, `_italic_`, `~strike~`, `` `code` ``, a leading `>` quote).
- Markdown (a pull or merge request's description on GitHub or GitLab): payload text
  with every ASCII punctuation mark escaped, so it cannot link, autolink or format, and a
  zero-width joiner after each reference sigil (`@`, `#`, `!`, `~`, `%`, `$`, `&`), where
  a backslash is not enough: GitHub still resolves `\@team` and `\#12`; a payload URL
  is a link only when it is http(s) with nothing that could end the link.
- Everywhere payload text is shown to a person (requests, chat, tickets, pages, mail):
  no bidirectional control character (U+202A-U+202E, U+2066-U+2069), which could make
  the text read in another order than it is (CVE-2021-42574, "Trojan Source").

Everything else a template fills (extra_vars, terraform var, concurrency keys) is data:
it reaches Ansible tagged `!unsafe` and Terraform as `-var` arguments, never a shell.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlsplit

from app.errors import SinkError

# ------------------------------------------------------------------ ansible limit

# A host or group name as inventories write them: no pattern syntax, no leading `-`
# (an option), no `@` (a file), no `:`/`,` inside one name.
INVENTORY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,252}")
# Groups every inventory has: naming one selects every host, which no payload may do.
IMPLICIT_GROUPS = frozenset({"all", "ungrouped"})


def limit_names(value: object) -> list[str]:
    """The inventory names one templated part of `limit` renders to, or SinkError."""
    text = str(value)
    names = text.split(",")
    for name in names:
        if not INVENTORY_NAME.fullmatch(name):
            raise SinkError(
                f"limit: {text[:80]!r} from the incident is not a list of inventory host or "
                "group names (letters, digits, `_`, `.`, `-`; no pattern syntax)"
            )
        if name in IMPLICIT_GROUPS:
            raise SinkError(f"limit: {name!r} from the incident would select every host")
    return names


def check_limit_names(names: Iterable[str], known: frozenset[str], inventory: str) -> None:
    """Each name a payload put into `limit` is a host or group of the step's inventory."""
    unknown = sorted({name for name in names if name not in known})
    if unknown:
        shown = ", ".join(repr(name[:80]) for name in unknown[:5])
        raise SinkError(f"limit: {shown} from the incident not in the inventory {inventory}")


# ------------------------------------------------------------------ URLs

_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#{]*")


# Kubernetes' names (RFC 1123 subdomains: a Deployment's, a namespace's within 63) and
# label values: one name each, nothing a payload could turn into a list, a path or a
# selector expression (`web,all`, `../x`, `a b`, `app!=x`).
_DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")


def kube_name(value: object, field: str, most: int = 253) -> str:
    """A Kubernetes object's (or namespace's) name, whole, or SinkError."""
    text = str(value)
    if len(text) > most or not _DNS_NAME.fullmatch(text):
        raise SinkError(
            f"{field}: {text[:80]!r} is not one Kubernetes name (lower-case letters, digits, "
            f"`-` and `.`, at most {most} characters)"
        )
    return text


def label_value(value: object, field: str) -> str:
    """A Kubernetes label value, whole, or SinkError."""
    text = str(value)
    if len(text) > 63 or not _LABEL_VALUE.fullmatch(text):
        raise SinkError(f"{field}: {text[:80]!r} is not one Kubernetes label value")
    return text


def url_template_problem(source: str) -> str | None:
    """Why a URL template lets a payload choose where it connects, or None."""
    found = _AUTHORITY.match(source)
    if found is None:
        return "a URL must start with its scheme and host written out (http://host/...)"
    rest = source[found.end() :]
    if "{" in found.group() or rest.startswith("{"):
        return "templates may fill the path and query of a URL, not its scheme, host or port"
    return None


def url_part(value: object) -> str:
    """One templated part of a URL: percent-encoded as one path segment or query value."""
    encoded = quote(str(value), safe="")
    if encoded in ("", ".", ".."):
        raise SinkError(f"URL: {str(value)!r} from the incident is not a path segment")
    return encoded


# Cloud metadata services outside link-local: AWS's IPv6 one, Alibaba's.
_METADATA = (ipaddress.ip_network("fd00:ec2::254/128"), ipaddress.ip_network("100.100.100.200/32"))


def _forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local (cloud metadata)"
    if address.is_unspecified or address.is_multicast:
        return "not a host address"
    if any(address in network for network in _METADATA):
        return "a cloud metadata service"
    return None


def check_destination(url: str, allowed_hosts: Iterable[str]) -> None:
    """Refuse a URL whose host resolves to loopback, link-local or a metadata service,
    unless the config allow-lists the host (by name, address or network)."""
    host = urlsplit(url).hostname
    if not host:
        raise SinkError("URL has no host")
    for allowed in allowed_hosts:
        if host == allowed.lower():
            return
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(allowed, strict=False):
                return
        except ValueError:
            continue
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise SinkError(f"URL host {host!r} does not resolve") from exc
    for info in infos:
        why = _forbidden(ipaddress.ip_address(info[4][0]))
        if why is not None:
            raise SinkError(
                f"URL host {host!r} resolves to a {why} address; allow it in "
                "`verify_allowed_hosts` if that is meant"
            )


# ------------------------------------------------------------------ platform API paths


def path_segment(value: object, pattern: re.Pattern[str]) -> str | None:
    """A platform id from a payload as one URL path segment, or None when it is not the
    platform's id format: it can never reach another endpoint. The caller then leaves out
    the call on that object (a note on the platform's incident) and still pages."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        return None
    return quote(value, safe="")


# ------------------------------------------------------------------ shown to people

_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def without_bidi(value: object) -> str:
    """Payload text without bidirectional controls."""
    return _BIDI.sub("", str(value))


def inert(value: Any) -> Any:
    """A payload document (strings in dicts and lists) without bidirectional controls."""
    if isinstance(value, str):
        return without_bidi(value)
    if isinstance(value, dict):
        return {inert(key): inert(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [inert(item) for item in value]
    return value


# ------------------------------------------------------------------ chat markup

# Slack has no escape for its formatting marks; an invalid date's fallback text is shown
# as it is, unformatted (the way jsx-slack's <Escape> does it).
_SLACK_MARKS = re.compile(r"[*_~`]+")
# Inside a link's label no date can stand: look-alike characters instead (jsx-slack's).
_SLACK_LOOKALIKES = str.maketrans({"*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb"})


def _slack_entities(value: object) -> str:
    text = without_bidi(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # A `>` that starts a line would quote it; a soft hyphen before it keeps it text.
    return re.sub(r"(?m)^&gt;", "\u00ad&gt;", text)


def slack_text(value: object) -> str:
    """Payload text for Slack mrkdwn: `&`, `<`, `>` escaped as Slack documents, so it
    cannot mention (`<!channel>`) or link (`<url|text>`), and its formatting marks shown
    as they are, so it cannot format."""
    text = _slack_entities(value)
    return _SLACK_MARKS.sub(lambda found: f"<!date^00000000^{{_}}|{found.group()}>", text)


def slack_label(value: object) -> str:
    """Payload text as a Slack link's label, where no date can stand."""
    return _slack_entities(value).translate(_SLACK_LOOKALIKES).replace("|", "\u2223")


def slack_code(value: object) -> str:
    """Payload text inside a Slack code block, which no backtick of it can close."""
    return (
        without_bidi(value)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("`", "\u02cb")
    )


# ------------------------------------------------------------------ markdown

# CommonMark lets a backslash escape any ASCII punctuation mark, and GitHub and GitLab
# both honour it for markup; not for references (github/markup#1168,
# github/cmark-gfm#181): a zero-width joiner after each sigil GitHub or GitLab resolves
# (`@user`, `#12`, GitLab's `!3`, `~label`, `%milestone`, `$snippet`, `&epic`) does.
_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_REFERENCE_SIGILS = re.compile(r"(\\[@#!~%$&])")
_LINKABLE = re.compile(r"https?://[^\s<>\\`\x00-\x1f\x7f]{1,2000}")


def markdown_text(value: object, limit: int = 500) -> str:
    """Payload text as inert markdown on one line, at most `limit` characters of it."""
    text = " ".join(without_bidi(value).split())[:limit]
    return _REFERENCE_SIGILS.sub("\\1\u200d", _MARKDOWN_PUNCTUATION.sub(r"\\\1", text))


def markdown_link(label: str, url: object) -> str:
    """`label` (runbook text) linking to a payload URL, or the label with the URL as
    escaped text when it is not a plain http(s) URL (`javascript:`, `<` or spaces)."""
    if isinstance(url, str) and _LINKABLE.fullmatch(url):
        return f"[{label}](<{url}>)"
    return f"{label} ({markdown_text(url)})" if url else label


def markdown_code_block(text: str) -> str:
    """Text shown as it is, in a fenced block no line of it can close."""
    text = without_bidi(text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"

"""Where payload values may go (app.fields.sinks through the templating sinks): whatever an
incident carries, a rendered `limit` is inventory names or refused, a rendered URL keeps
the runbook's scheme, host and port, platform ids stay one path segment, chat text
cannot mention or link."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import SinkError
from app.fields.sinks import (
    INVENTORY_NAME,
    check_destination,
    check_limit_names,
    inert,
    markdown_code_block,
    markdown_link,
    markdown_text,
    path_segment,
    slack_code,
    slack_label,
    slack_text,
    url_template_problem,
)
from app.fields.templating import render_limit, render_text
from app.incident import Incident
from app.runbooks.models import HttpCheck


def context(value: Any) -> dict[str, Any]:
    return {"incident": {"labels": {"instance": value}}}


LIMIT = "{{ incident.labels.instance }}"


@pytest.mark.parametrize(
    "value", ["@/proc/self/environ", "all", "ungrouped", "web-*:db-*", "!web-1", "web-1&db",
              "~web.*", "web[0]", "", "-l", "a b", "web-1,", ",", "web-1:db-1", "x\ny"],
)  # fmt: skip
def test_a_limit_value_that_is_not_inventory_names_is_refused(value: str) -> None:
    with pytest.raises(SinkError, match="limit"):
        render_limit(LIMIT, context(value))


def test_literal_pattern_syntax_stays_and_names_are_collected() -> None:
    assert render_limit(LIMIT, context("web-1")) == ("web-1", ["web-1"])
    assert render_limit("web:&{{ incident.labels.instance }}", context("web-1,web-2")) == (
        "web:&web-1,web-2",
        ["web-1", "web-2"],
    )
    assert render_limit("all", context("x")) == ("all", [])  # runbook text: trusted


def test_names_must_be_in_the_inventory() -> None:
    known = frozenset({"web-1", "web", "db-1"})
    check_limit_names(["web-1", "web"], known, "fleet.ini")
    with pytest.raises(SinkError, match="'web-9' from the incident not in the inventory"):
        check_limit_names(["web-1", "web-9"], known, "fleet.ini")


@given(st.text(max_size=40))
def test_any_payload_value_renders_to_names_or_is_refused(value: str) -> None:
    try:
        rendered, names = render_limit("{{ incident.labels.instance }}", context(value))
    except SinkError:
        return
    assert rendered.split(",") == names
    assert all(
        INVENTORY_NAME.fullmatch(name) and name not in ("all", "ungrouped") for name in names
    )


URL = "http://checks.internal:9100/health/{{ incident.labels.instance }}?host={{ incident.labels.instance }}"


@given(st.text(max_size=60))
def test_any_payload_value_stays_in_the_path_and_query(value: str) -> None:
    try:
        url = render_text(URL, context(value), "url")
    except SinkError:
        return
    parts = urlsplit(url)
    assert (parts.scheme, parts.hostname, parts.port) == ("http", "checks.internal", 9100)
    assert parts.path.count("/") == 2 and parts.path.startswith("/health/")
    assert parts.query.count("=") == 1 and "&" not in parts.query and not parts.fragment


def test_dot_segments_are_refused() -> None:
    for value in (".", ".."):
        with pytest.raises(SinkError):
            render_text(URL, context(value), "url")


@pytest.mark.parametrize(
    "url", ["http://{{ incident.labels.instance }}:9100/health", "http://host:{{ incident.labels.p }}/",
            "http://host{{ incident.labels.x }}/", "https://{% if 1 %}a{% endif %}/"],
)  # fmt: skip
def test_a_template_in_scheme_host_or_port_is_refused_when_the_runbook_loads(url: str) -> None:
    assert url_template_problem(url) is not None
    with pytest.raises(ValueError, match="not its scheme, host or port"):
        HttpCheck(url=url)


def test_path_and_query_templates_load() -> None:
    assert url_template_problem(URL) is None
    assert url_template_problem("https://host/") is None


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "169.254.169.254", "[::1]", "0.0.0.0", "[fe80::1]",
             "100.100.100.200", "[::ffff:127.0.0.1]"],
)  # fmt: skip
def test_loopback_link_local_and_metadata_are_refused(host: str) -> None:
    with pytest.raises(SinkError, match="verify_allowed_hosts"):
        check_destination(f"http://{host}:9100/health", [])


def test_the_config_can_allow_a_host_by_name_address_or_network() -> None:
    check_destination("http://127.0.0.1:9/x", ["127.0.0.1"])
    check_destination("http://127.0.0.5:9/x", ["127.0.0.0/8"])
    check_destination("http://localhost:9/x", ["localhost"])
    check_destination("http://10.1.2.3:9/x", [])  # private networks are what checks are for


OPSGENIE_ID = re.compile(r"[A-Za-z0-9-]{1,128}")


@given(st.text(alphabet=string.printable, max_size=40))
def test_a_platform_id_is_one_segment_or_nothing(value: str) -> None:
    segment = path_segment(value, OPSGENIE_ID)
    assert segment is None or (segment == value and "/" not in segment and "?" not in segment)


def test_a_crafted_opsgenie_id_is_refused() -> None:
    assert path_segment("VICTIM-ID/close?", OPSGENIE_ID) is None
    assert path_segment("../../v1/users", OPSGENIE_ID) is None
    assert path_segment(None, OPSGENIE_ID) is None


def test_slack_text_cannot_mention_or_link() -> None:
    assert slack_text("<!channel> & <https://evil|Runbook>") == (
        "&lt;!channel&gt; &amp; &lt;https://evil|Runbook&gt;"
    )


def test_slack_text_cannot_format_or_quote() -> None:
    """Slack has no escape for `*`, `_`, `~` and backticks: each run is an invalid
    date's fallback text, which Slack shows as it is; a leading `>` gets a soft hyphen."""
    shown = slack_text("> *now* _it_ ~gone~ `code`")
    assert shown.startswith("\u00ad&gt; ")
    for mark in ("*", "_", "~", "`"):
        assert f"<!date^00000000^{{_}}|{mark}>" in shown
        # No mark stands outside a date's fallback.
        assert mark not in re.sub(r"<!date\^00000000\^\{_\}\|[*_~`]+>", "", shown), mark
    # In a link's label no date can stand: look-alikes, and no `|` or `>` to end it.
    assert slack_label("*a*|b>c_`") == "\u2217a\u2217\u2223b&gt;c\u02cd\u02cb"
    assert "`" not in slack_code("```\n<!here>") and "<" not in slack_code("<!here>")


BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def test_no_bidirectional_control_reaches_a_person() -> None:
    hostile = f"restart web-1{BIDI} ;rm -rf"
    for shown in (slack_text(hostile), slack_label(hostile), slack_code(hostile),
                  markdown_text(hostile), markdown_code_block(hostile)):  # fmt: skip
        assert not set(BIDI) & set(shown), shown
    assert inert({"title": hostile, "labels": [hostile], "n": 3}) == {
        "title": "restart web-1 ;rm -rf", "labels": ["restart web-1 ;rm -rf"], "n": 3,
    }  # fmt: skip


@pytest.mark.parametrize(
    "sigil", ["@acme/oncall", "#12", "!3", "~label", "%milestone", "$snippet", "&epic"]
)
def test_markdown_text_breaks_every_reference_github_or_gitlab_resolves(sigil: str) -> None:
    """A backslash does not stop GitHub's `\\@team` or `\\#12` (github/markup#1168):
    a zero-width joiner after the sigil does, and GitLab's sigils the same."""
    text = markdown_text(f"see {sigil} now")
    assert f"\\{sigil[0]}\u200d" in text, text
    assert not re.search(re.escape(sigil[0]) + r"[A-Za-z0-9]", text), text


def test_payload_keys_too_long_for_their_column_are_kept_as_their_hash() -> None:
    """A fingerprint or occurrence is chosen by the sender; stored in a 255-character
    column, a longer one would fail the whole delivery on PostgreSQL."""
    incident = Incident(
        source="generic", delivery_id="d", event_type="e", status="firing", title="t",
        severity="low", fingerprint="f" * 10_000, occurrence="o" * 300,
        received_at=datetime.now(UTC),
    )  # fmt: skip
    assert incident.fingerprint == "sha256:" + sha256(b"f" * 10_000).hexdigest()
    assert incident.occurrence == "sha256:" + sha256(b"o" * 300).hexdigest()
    short = incident.model_copy(update={"fingerprint": "fp", "occurrence": ""})
    assert Incident.model_validate(short.model_dump()).occurrence == "fp"


@pytest.mark.parametrize(
    "hostile",
    [
        "@acme/oncall please look",
        "fixes #12 and !3 and ~label and %milestone",
        "[click](javascript:alert(1))",
        "<img src=x onerror=alert(1)>",
        "https://evil.example/login",
        "*bold* _it_ `code` ~~gone~~ | table |",
        "# heading\n\n> quote\n- item",
        ":rotating_light: emoji",
    ],
)
def test_markdown_text_leaves_no_markup_mention_or_reference(hostile: str) -> None:
    text = markdown_text(hostile)
    assert "\n" not in text
    # Every ASCII punctuation mark is escaped: none is left to start markup.
    unescaped = re.sub(r"\\[!-/:-@\[-`{-~]", "", text)
    assert not re.search(r"[!-/:-@\[-`{-~]", unescaped), text


def test_markdown_link_only_for_plain_http_urls() -> None:
    assert markdown_link("incident", "https://pd.example/i/1?x=(2)") == (
        "[incident](<https://pd.example/i/1?x=(2)>)"
    )
    for hostile in ("javascript:alert(1)", "https://a b", "https://x>[y](javascript:1)", "ftp://x"):
        assert "](" not in markdown_link("incident", hostile), hostile
    assert markdown_link("incident", None) == "incident"


def test_a_code_block_cannot_be_closed_from_inside() -> None:
    block = markdown_code_block('web["```\n@everyone"]')
    fence = block.splitlines()[0].removesuffix("text")
    assert len(fence) == 4 and block.endswith("\n" + fence)

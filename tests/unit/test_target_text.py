"""What payload text can become in the new targets, for any text: Jira ADF text nodes
and no marks but the service's link, one unforgeable {noformat} block, ServiceNow text
with no [code] tag, a one-line subject."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from app.escalation.jira import adf, noformat
from app.escalation.servicenow import inert

TRICKY = st.text() | st.sampled_from(["{noformat}", "{NOFORMAT:title=x}", "[code]<b>x</b>[/code]",
                                      "[CODE]", "[/Code]", "\r\n", "{noformat}\n{code}"])  # fmt: skip
texts = st.lists(TRICKY, max_size=6).map("".join)


@given(texts)
def test_adf_holds_payload_text_only_in_unmarked_text_nodes(text: str) -> None:
    document = adf(text, ("Execution in remediator", "http://remediator.test/ui/#/x"))
    [link, *paragraphs] = document["content"]
    assert link["content"][0]["marks"] == [
        {"type": "link", "attrs": {"href": "http://remediator.test/ui/#/x"}}
    ]
    for paragraph in paragraphs:
        assert paragraph["type"] == "paragraph"
        for node in paragraph.get("content", []):
            assert set(node) == {"type", "text"} and node["type"] == "text"
    shown = [n["text"] for p in paragraphs for n in p.get("content", [])]
    assert "".join(shown) == "".join(line for line in text.splitlines() if line.strip())


@given(texts)
def test_one_noformat_block_whatever_the_text(text: str) -> None:
    block = noformat(text)
    assert len(re.findall(r"\{noformat", block, re.IGNORECASE)) == 2
    assert block.startswith("{noformat}\n") and block.endswith("\n{noformat}")


@given(texts)
def test_servicenow_text_has_no_code_tag(text: str) -> None:
    assert not re.search(r"\[/?code\]", inert(text), re.IGNORECASE)
    assert len(inert(text)) <= 4000

"""The rules a runbook test's expectations follow: mappings partial, lists item by item
and equal in length, other values equal."""

from __future__ import annotations

from app.runbook_tests import differences


def test_a_mapping_is_matched_partially() -> None:
    rendered = {"playbook": "clear-cache.yml", "extra_vars": {"cache_dir": "/tmp/c", "keep": 3}}
    assert differences({"extra_vars": {"cache_dir": "/tmp/c"}}, rendered, "s") == []
    assert differences({}, rendered, "s") == []
    assert differences({"extra_vars": {"cache_dir": "/var/c"}}, rendered, "s") == [
        's.extra_vars.cache_dir: expected "/var/c", got "/tmp/c"'
    ]
    assert differences({"limit": "web-1"}, rendered, "s") == ["s.limit: missing"]
    assert differences({"extra_vars": {"keep": 3}}, {"extra_vars": "3"}, "s") == [
        's.extra_vars: expected a mapping, got "3"'
    ]


def test_a_list_is_equal_in_length_and_matched_item_by_item() -> None:
    steps = [{"ansible": {"limit": "web-1", "forks": 5}}, {"awx": {"job_template": "x"}}]
    assert differences([{"ansible": {"limit": "web-1"}}, {"awx": {}}], steps, "s") == []
    assert differences([{"ansible": {}}], steps, "s") == [
        's: expected [{"ansible": {}}], got ' + '[{"ansible": {"limit": "web-1", "forks": 5}}, '
        '{"awx": {"job_template": "x"}}]'
    ]
    assert differences([{"awx": {}}, {"ansible": {}}], steps, "s") == [
        "s[0].awx: missing", "s[1].ansible: missing",
    ]  # fmt: skip
    assert differences(["a", "b"], ["a", "b"], "s") == []
    assert differences(["a", "b"], ["b", "a"], "s") == [
        's[0]: expected "a", got "b"', 's[1]: expected "b", got "a"',
    ]  # fmt: skip


def test_other_values_are_equal_numbers_by_value_and_flags_only_to_flags() -> None:
    assert differences(3, 3, "s") == [] and differences(None, None, "s") == []
    assert differences(60, 60.0, "s") == []  # `timeout: 60` against the rendered 60.0
    assert differences("3", 3, "s") == ['s: expected "3", got 3']
    assert differences(True, 1, "s") == ["s: expected true, got 1"]
    assert differences(False, None, "s") == ["s: expected false, got null"]

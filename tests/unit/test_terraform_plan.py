"""The plan summary and the max_destroy guard, on `terraform show -json` output shaped as
Terraform documents it (resource_changes[].change.actions, output_changes)."""

from __future__ import annotations

from typing import Any

from app.steps.terraform.plan import refusal, summarise


def change(address: str, *actions: str) -> dict[str, Any]:
    return {"address": address, "mode": "managed", "change": {"actions": list(actions)}}


PLAN: dict[str, Any] = {
    "format_version": "1.2",
    "resource_changes": [
        change("aws_instance.web", "update"),
        change("aws_lb.front", "delete", "create"),
        change("aws_s3_bucket.logs", "create", "delete"),
        change("aws_iam_role.old", "delete"),
        change("aws_sqs_queue.jobs", "create"),
        change("aws_eip.ip", "forget"),
        change("aws_vpc.main", "no-op"),
        {"address": "data.aws_ami.ubuntu", "mode": "data", "change": {"actions": ["read"]}},
    ],
    "output_changes": {
        "url": {"actions": ["update"], "before": "a", "after": "b"},
        "id": {"actions": ["no-op"], "before": "x", "after": "x"},
    },
}


def test_every_kind_of_change_is_named_by_address() -> None:
    summary = summarise(PLAN)
    assert summary.change == ["aws_instance.web"]
    assert summary.replace == ["aws_lb.front", "aws_s3_bucket.logs"]
    assert summary.destroy == ["aws_iam_role.old"]
    assert summary.add == ["aws_sqs_queue.jobs"]
    assert summary.forget == ["aws_eip.ip"]
    assert summary.outputs == ["url"]
    assert summary.destroys == 3
    assert summary.text().startswith("3 to add, 1 to change, 3 to destroy (replace: aws_lb.front")


def test_the_guard_counts_replacements_as_destroys() -> None:
    summary = summarise(PLAN)
    assert refusal(summary, 3) is None
    why = refusal(summary, 2)
    assert why is not None and why.startswith("max_destroy:")
    assert "aws_lb.front, aws_s3_bucket.logs, aws_iam_role.old" in why
    assert "more than max_destroy 2" in why


def test_an_empty_or_read_only_plan_changes_nothing() -> None:
    plans: tuple[dict[str, Any], ...] = (
        {},
        {"resource_changes": None},
        {"resource_changes": [PLAN["resource_changes"][-1]]},
    )
    for plan in plans:
        summary = summarise(plan)
        assert summary.changes_nothing and summary.text() == "no changes"
        assert refusal(summary, 0) is None


def test_an_output_change_alone_is_a_change() -> None:
    summary = summarise({"output_changes": {"url": {"actions": ["create"]}}})
    assert not summary.changes_nothing
    assert summary.text() == "0 to add, 0 to change, 0 to destroy (outputs: url)"

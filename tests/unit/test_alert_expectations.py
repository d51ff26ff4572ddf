"""Which alert conditions hold given a project's ledger and the time, and when a message is due."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_outamation.alerts.expectations import (
    API_UNREACHABLE,
    LATE,
    REJECTED,
    UNREACHABLE,
    UNSENT,
    Expectations,
    Facts,
    UnsentBatch,
    deadline_today,
    evaluate,
    transition,
)
from airflow_outamation.projects import InvalidEntry, Project, parse_entry, seed_defaults

# A Monday, 09:30 in New York.
NOW = datetime(2026, 11, 30, 14, 30, tzinfo=timezone.utc)
BY_NINE = Expectations(expect_files_by="09:00", timezone="America/New_York")


def facts(**changes: Any) -> Facts:
    return Facts(**{"now": NOW, "folder": "/up/acme/in_progress", "claimed_today": 0, **changes})


def test_no_file_by_the_deadline_is_late_since_the_deadline() -> None:
    found, judged = evaluate(BY_NINE, facts())
    assert list(found) == [LATE]
    assert found[LATE].since == datetime(2026, 11, 30, 14, 0, tzinfo=timezone.utc).timestamp()
    assert "09:00 (America/New_York)" in found[LATE].summary
    assert LATE in judged


@pytest.mark.parametrize(
    ("expect", "changes"),
    [
        (BY_NINE, {"claimed_today": 1}),  # a file came
        (BY_NINE, {"now": NOW - timedelta(minutes=31)}),  # 08:59 local: not yet due
        (Expectations(expect_files_by="09:00", expect_files_on=["tue"], timezone="America/New_York"), {}),
        (Expectations(), {}),  # nothing expected
    ],
)
def test_not_late(expect: Expectations, changes: dict[str, Any]) -> None:
    assert LATE not in evaluate(expect, facts(**changes))[0]


def test_the_deadline_is_in_the_projects_time_zone_on_its_weekdays() -> None:
    weekdays = Expectations(expect_files_by="09:00", expect_files_on=["mon", "fri"], timezone="Asia/Tokyo")
    # 14:30 UTC Monday is 23:30 Monday in Tokyo.
    assert deadline_today(weekdays, NOW) == datetime(2026, 11, 30, 0, 0, tzinfo=timezone.utc)
    assert deadline_today(weekdays, NOW + timedelta(days=1)) is None


def test_batches_unsent_past_max_unsent_age_are_one_condition_naming_them_and_the_error() -> None:
    expect = Expectations(max_unsent_age=600)
    old, young = NOW.timestamp() - 700, NOW.timestamp() - 100
    unsent = {
        "msg_b": UnsentBatch(old, "HTTP 503: busy", 503),
        "msg_a": UnsentBatch(old - 5),
        "msg_c": UnsentBatch(young),
    }
    found, _ = evaluate(expect, facts(unsent=unsent))
    assert list(found) == [UNSENT]
    assert found[UNSENT].since == old - 5
    assert "msg_a, msg_b under /up/acme/in_progress" in found[UNSENT].look_at
    assert "HTTP 503: busy" in found[UNSENT].look_at
    assert "msg_c" not in found[UNSENT].look_at


def test_a_batch_without_any_answer_from_the_api_past_max_unreachable_is_api_unreachable() -> None:
    expect = Expectations(max_unreachable=300)
    before = NOW.timestamp() - 400
    unsent = {
        "msg_silent": UnsentBatch(before, "ConnectionError: refused", None),
        "msg_busy": UnsentBatch(before, "HTTP 503: busy", 503),
        "msg_new": UnsentBatch(NOW.timestamp() - 10, "ConnectionError: refused", None),
        "msg_untried": UnsentBatch(before),
    }
    found, judged = evaluate(expect, facts(unsent=unsent))
    assert list(found) == [API_UNREACHABLE]
    assert found[API_UNREACHABLE].look_at.startswith("batches msg_silent under")
    assert "ConnectionError: refused" in found[API_UNREACHABLE].look_at
    open_alerts, _, _ = transition({}, found, judged)
    _, _, cleared = transition(open_alerts, *evaluate(expect, facts(unsent={})))
    assert [condition.key for condition in cleared] == [API_UNREACHABLE]


def test_each_rejected_batch_is_its_own_condition_unless_turned_off() -> None:
    rejected = {"msg_x": "/up/acme/in_progress/11302026"}
    found, _ = evaluate(Expectations(), facts(rejected=rejected))
    assert list(found) == [f"{REJECTED}:msg_x"]
    assert evaluate(Expectations(alert_on_rejected=False), facts(rejected=rejected))[0] == {}


def test_an_unreadable_server_is_an_alert_only_after_max_unreachable_and_judges_nothing_else() -> None:
    expect = Expectations(expect_files_by="09:00", max_unreachable=300)
    soon = facts(claimed_today=None, error="SFTPConnectError: refused", failing_since=NOW.timestamp() - 100)
    assert evaluate(expect, soon) == ({}, {UNREACHABLE})
    late = facts(claimed_today=None, error="SFTPConnectError: refused", failing_since=NOW.timestamp() - 400)
    found, judged = evaluate(expect, late)
    assert list(found) == [UNREACHABLE]
    assert found[UNREACHABLE].look_at == "SFTPConnectError: refused"
    assert judged == {UNREACHABLE}


def test_a_condition_gives_one_start_and_one_clear_across_many_checks() -> None:
    open_alerts: dict[str, Any] = {}
    messages = []
    for claimed in (0, 0, 0, 1, 1):
        found, judged = evaluate(BY_NINE, facts(claimed_today=claimed))
        open_alerts, started, cleared = transition(open_alerts, found, judged)
        messages += [("started", c.key) for c in started] + [("cleared", c.key) for c in cleared]
    assert messages == [("started", LATE), ("cleared", LATE)]
    assert open_alerts == {}


def test_an_open_alert_is_kept_not_cleared_while_its_kind_cannot_be_judged() -> None:
    found, judged = evaluate(BY_NINE, facts())
    open_alerts, _, _ = transition({}, found, judged)
    unread = facts(claimed_today=None, error="timeout", failing_since=NOW.timestamp())
    after, started, cleared = transition(open_alerts, *evaluate(BY_NINE, unread))
    assert (after, started, cleared) == (open_alerts, [], [])


def test_a_rejected_batch_no_longer_seen_is_dropped_without_a_clear() -> None:
    expect = Expectations()
    open_alerts, started, _ = transition({}, *evaluate(expect, facts(rejected={"msg_x": "/f"})))
    assert [c.key for c in started] == ["rejected:msg_x"]
    after, started, cleared = transition(open_alerts, *evaluate(expect, facts(rejected={})))
    assert (after, started, cleared) == ({}, [], [])


GOOD: dict[str, Any] = {
    "project_id": "acme",
    "sftp_conn_id": "sftp_acme",
    "document_api_conn_id": "api_acme",
    "base_path": "/upload/acme",
    "profile_code": "007",
}


def test_alert_keys_are_checked_by_the_schema() -> None:
    bad = parse_entry(
        {
            **GOOD,
            "expect_files_by": "9am",
            "expect_files_on": ["monday"],
            "max_unsent_age": 0,
            "alert_on_rejected": "yes",
            "max_unreachable": -1,
            "alert_targets": {"email": ["nobody"], "pager": "x"},
        },
        0,
    )
    assert isinstance(bad, InvalidEntry)
    keys = sorted(problem.split(" ")[0] for problem in bad.problems)
    assert keys == [
        "alert_on_rejected",
        "alert_targets",
        "expect_files_by",
        "expect_files_on",
        "max_unreachable",
        "max_unsent_age",
    ]


def test_alert_targets_default_from_the_environment_and_the_entry_wins() -> None:
    defaults = seed_defaults({"OUTAMATION_ALERT_TARGETS": '{"email": ["ops@example.com"]}'})
    project = parse_entry({**GOOD, "expect_files_by": "09:00", "expect_files_on": ["mon"]}, 0, defaults)
    assert isinstance(project, Project)
    assert project.alert_targets == {"email": ["ops@example.com"]}
    assert project.alert_on_rejected is True
    own = parse_entry({**GOOD, "alert_targets": {"webhook": "hooks"}}, 0, defaults)
    assert isinstance(own, Project)
    assert own.alert_targets == {"webhook": "hooks"}
    broken = parse_entry(GOOD, 0, seed_defaults({"OUTAMATION_ALERT_TARGETS": "ops@example.com"}))
    assert isinstance(broken, InvalidEntry)
    assert "OUTAMATION_ALERT_TARGETS" in broken.problems[0]

"""
Which alert conditions hold, given what a check read of a project's ledger and the time (no I/O).

A condition has a key (one per thing that is wrong: ``late``, ``unsent``, ``unreachable``,
``rejected:<message id>``), the time it started and what to look at. :func:`transition` compares the
conditions of one check with the alerts already open, so each condition gives one message when it
starts and one when it clears, however many runs and retries see it in between.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, time
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

#: Day names an entry's ``expect_files_on`` may list, Monday first (``datetime.weekday()`` order).
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LATE = "late"
UNSENT = "unsent"
REJECTED = "rejected"
UNREACHABLE = "unreachable"
API_UNREACHABLE = "api_unreachable"
#: Conditions that clear by themselves and so get a "cleared" message; a rejected batch waits for a person.
CLEARING = (LATE, UNSENT, UNREACHABLE, API_UNREACHABLE)


class UnsentBatch(NamedTuple):
    """A batch the API has not accepted: when it was recorded (unix seconds) and its last failed send."""

    recorded_at: float
    failure: str | None = None
    #: the HTTP status of the last failed send; ``None`` when no answer came (or it never failed)
    status: int | None = None


@dataclass(frozen=True)
class Expectations:
    """
    What a project promises (its entry's alert keys).

    :param expect_files_by: ``"HH:MM"`` in ``timezone`` by which a file should have been claimed that day
    :param expect_files_on: the weekdays ``expect_files_by`` applies to (``"mon"``...); all when empty
    :param max_unsent_age: seconds a claimed file may wait for the API to accept it
    :param alert_on_rejected: a batch moved to the rejected folder is an alert
    :param max_unreachable: seconds the SFTP server may be unreachable, and a batch may wait while the
        API gives no answer at all
    :param timezone: the project's IANA time zone
    """

    expect_files_by: str | None = None
    expect_files_on: Sequence[str] = ()
    max_unsent_age: float | None = None
    alert_on_rejected: bool = True
    max_unreachable: float | None = None
    timezone: str = "UTC"

    def describe(self) -> list[str]:
        """One line per expectation, as the DAG docs and the status page show them."""
        lines = []
        if self.expect_files_by:
            days = ", ".join(self.expect_files_on) if self.expect_files_on else "every day"
            lines.append(f"a file by {self.expect_files_by} ({self.timezone}), {days}")
        if self.max_unsent_age is not None:
            lines.append(f"every claimed file accepted by the API within {self.max_unsent_age:g} s")
        if self.alert_on_rejected:
            lines.append("no batch rejected")
        if self.max_unreachable is not None:
            lines.append(f"the SFTP server and the API reachable (alert after {self.max_unreachable:g} s)")
        return lines


@dataclass(frozen=True)
class Facts:
    """
    What one check read of a project.

    :param now: when it read (aware)
    :param folder: the project's claim folder root (``<base>/in_progress``), for messages
    :param claimed_today: files claimed today in the project's time zone; ``None`` when not read
    :param unsent: message id -> each batch the API has not accepted yet; ``None`` when not read
    :param rejected: message id -> the claim folder of each rejected batch; ``None`` when not read
    :param error: why the SFTP server could not be read, ``None`` when it could
    :param failing_since: when the reads began failing (unix seconds), from the last check's state
    """

    now: datetime
    folder: str
    claimed_today: int | None = None
    unsent: Mapping[str, UnsentBatch] | None = None
    rejected: Mapping[str, str] | None = None
    error: str | None = None
    failing_since: float | None = None


@dataclass(frozen=True)
class Condition:
    """
    One thing that is wrong with a project.

    :param key: its identity across checks (``late``, ``unsent``, ``rejected:<message id>``)
    :param kind: ``late``, ``unsent``, ``rejected`` or ``unreachable``
    :param since: when it began (unix seconds)
    :param summary: one line: what is wrong
    :param look_at: where to look (folder, batch ids, the error)
    """

    key: str
    kind: str
    since: float
    summary: str
    look_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The condition as JSON-ready values."""
        return asdict(self)


def deadline_today(expect: Expectations, now: datetime) -> datetime | None:
    """Today's ``expect_files_by`` in the project's time zone, ``None`` when today expects nothing."""
    if not expect.expect_files_by:
        return None
    local = now.astimezone(ZoneInfo(expect.timezone))
    if expect.expect_files_on and WEEKDAYS[local.weekday()] not in expect.expect_files_on:
        return None
    hour, minute = (int(part) for part in expect.expect_files_by.split(":"))
    return datetime.combine(local.date(), time(hour, minute), tzinfo=local.tzinfo)


def evaluate(expect: Expectations, facts: Facts) -> tuple[dict[str, Condition], set[str]]:
    """
    The conditions that hold, and the kinds this check could judge (an unread ledger judges none but
    ``unreachable``: an alert it cannot see is left as it is, neither repeated nor cleared).
    """
    now = facts.now.timestamp()
    found: dict[str, Condition] = {}
    judged = {UNREACHABLE}
    if facts.error is not None and expect.max_unreachable is not None:
        since = facts.failing_since if facts.failing_since is not None else now
        if now - since >= expect.max_unreachable:
            found[UNREACHABLE] = Condition(
                UNREACHABLE, UNREACHABLE, since, "the SFTP server cannot be reached", facts.error
            )
    if facts.error is not None:
        return found, judged
    deadline = deadline_today(expect, facts.now)
    if facts.claimed_today is not None:
        judged.add(LATE)
        if deadline is not None and facts.now >= deadline and facts.claimed_today == 0:
            found[LATE] = Condition(
                LATE,
                LATE,
                deadline.timestamp(),
                f"no file arrived by {expect.expect_files_by} ({expect.timezone})",
                f"the input folder; today's claim folder under {facts.folder} is empty",
            )
    if facts.unsent is not None:
        judged |= {UNSENT, API_UNREACHABLE}
        if expect.max_unsent_age is not None:
            old = {
                key: batch
                for key, batch in facts.unsent.items()
                if now - batch.recorded_at > expect.max_unsent_age
            }
            if old:
                found[UNSENT] = _unsent(
                    UNSENT, old, f"not accepted by the API after {expect.max_unsent_age:g} s", facts
                )
        if expect.max_unreachable is not None:
            silent = {
                key: batch
                for key, batch in facts.unsent.items()
                if batch.failure and batch.status is None and now - batch.recorded_at > expect.max_unreachable
            }
            if silent:
                found[API_UNREACHABLE] = _unsent(
                    API_UNREACHABLE,
                    silent,
                    f"without an answer from the API for {expect.max_unreachable:g} s",
                    facts,
                )
    if facts.rejected is not None:
        judged.add(REJECTED)
        if expect.alert_on_rejected:
            for message_id, claim_dir in facts.rejected.items():
                key = f"{REJECTED}:{message_id}"
                found[key] = Condition(
                    key,
                    REJECTED,
                    now,
                    f"batch {message_id} was rejected",
                    f"its files and {message_id}.json in the rejected folder beside {claim_dir}",
                )
    return found, judged


def _unsent(kind: str, batches: Mapping[str, UnsentBatch], what: str, facts: Facts) -> Condition:
    """One condition naming ``batches``, since the oldest was recorded, with the last error seen."""
    failures = sorted(batch.failure for batch in batches.values() if batch.failure)
    return Condition(
        kind,
        kind,
        min(batch.recorded_at for batch in batches.values()),
        f"{len(batches)} batch(es) {what}",
        f"batches {', '.join(sorted(batches))} under {facts.folder}"
        + (f"; last error: {failures[-1]}" if failures else ""),
    )


def transition(
    open_alerts: Mapping[str, Mapping[str, Any]], found: Mapping[str, Condition], judged: set[str]
) -> tuple[dict[str, dict[str, Any]], list[Condition], list[Condition]]:
    """
    The alerts open after a check, the conditions that started and those that cleared.

    A condition already open is kept as it was first seen (its start time too); one no longer found
    clears when its kind was judged (a rejected batch's alert is dropped without a message).

    :param open_alerts: key -> the open alert (:meth:`Condition.to_dict`) from the last check
    :param found: the conditions of this check (:func:`evaluate`)
    :param judged: the kinds this check could judge
    """
    still_open = {key: dict(alert) for key, alert in open_alerts.items()}
    started = [condition for key, condition in found.items() if key not in open_alerts]
    cleared = []
    for key, alert in open_alerts.items():
        if key not in found and alert["kind"] in judged:
            del still_open[key]
            if alert["kind"] in CLEARING:
                cleared.append(Condition(**alert))
    still_open.update({condition.key: condition.to_dict() for condition in started})
    return still_open, started, cleared

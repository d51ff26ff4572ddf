"""
The provider's metrics, sent through Airflow's own stats: StatsD, Datadog or OpenTelemetry per ``[metrics]``.

Nothing is sent unless ``[metrics]`` turns a backend on; StatsD names get its ``statsd_prefix``.

=================================  =======  ===========================================================
Name                               Kind     What
=================================  =======  ===========================================================
``outamation.files.ready``         counter  ready files the sensor passed on to the claim step
``outamation.files.claimed``       counter  files claimed (moved into ``in_progress/<date>/``)
``outamation.files.sent``          counter  files of batches the document API accepted
``outamation.files.failed``        counter  files of batches whose send failed (they are resent later)
``outamation.files.rejected``      counter  files moved to the rejected folder
``outamation.claim.duration``      timer    one claim step (ms)
``outamation.api.call.duration``   timer    one API request, each retry counted on its own (ms)
``outamation.send.duration``       timer    one send task: submit_batches, submit_batch, resend_unsent (ms)
``outamation.alerts.open``         gauge    alerts open for the project after its last check
``outamation.alerts.sent``         counter  alert messages sent (a start or a clear, to all its targets)
=================================  =======  ===========================================================

Every metric carries the tag ``project`` (the DAG id: one DAG per project). StatsD without tag
support drops tags, so, like Airflow's own ``ti.finish.<dag_id>.<task_id>.<state>``, each metric is
also sent under a per-project name, ``outamation.<project>.files.claimed`` (the project escaped
one-to-one: ``-`` as ``--``, ``.`` as ``-d``, see :func:`per_project_name`), while ``[metrics]
legacy_names_on`` is true (Airflow's default); turn it off where tags arrive (OpenTelemetry,
Datadog, InfluxDB tags) to send each metric once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from airflow.sdk.configuration import conf
from airflow.sdk.observability import stats

FILES_READY = "outamation.files.ready"
FILES_CLAIMED = "outamation.files.claimed"
FILES_SENT = "outamation.files.sent"
FILES_FAILED = "outamation.files.failed"
FILES_REJECTED = "outamation.files.rejected"
CLAIM_DURATION = "outamation.claim.duration"
API_CALL_DURATION = "outamation.api.call.duration"
SEND_DURATION = "outamation.send.duration"
ALERTS_OPEN = "outamation.alerts.open"
ALERTS_SENT = "outamation.alerts.sent"

#: The tag naming the project.
PROJECT_TAG = "project"


def per_project_name(name: str, project: str) -> str:
    """
    ``outamation.files.claimed`` of project ``acme`` -> ``outamation.acme.files.claimed``.

    The project is escaped one-to-one into one StatsD segment (letters, digits, ``_``, ``-``): ``-``
    escapes, ``-`` itself becomes ``--``, ``.`` ``-d`` and any other character ``-u`` and its six-digit
    hex code point, so distinct projects (``a.b``, ``a__b``) never share a name.
    """
    head, _, rest = name.partition(".")
    return f"{head}.{_segment(project)}.{rest}"


def _segment(project: str) -> str:
    escaped = []
    for char in project:
        if char.isascii() and (char.isalnum() or char == "_"):
            escaped.append(char)
        else:
            escaped.append({"-": "--", ".": "-d"}.get(char, f"-u{ord(char):06x}"))
    return "".join(escaped)


def _names(name: str, project: str) -> list[tuple[str, dict[str, str] | None]]:
    """The names to send a metric under, each with its tags."""
    names: list[tuple[str, dict[str, str] | None]] = [(name, {PROJECT_TAG: project})]
    if conf.getboolean("metrics", "legacy_names_on", fallback=True):
        names.append((per_project_name(name, project), None))
    return names


def count(name: str, value: int, project: str) -> None:
    """
    Add ``value`` to the counter ``name`` of ``project`` (nothing is sent for 0).

    :param name: one of this module's counter names
    :param value: how many
    :param project: the project (DAG id)
    """
    if value <= 0:
        return
    for stat, tags in _names(name, project):
        stats.incr(stat, count=value, tags=tags)


def gauge(name: str, value: float, project: str) -> None:
    """
    Set the gauge ``name`` of ``project`` to ``value``.

    :param name: one of this module's gauge names
    :param value: the current value
    :param project: the project (DAG id)
    """
    for stat, tags in _names(name, project):
        stats.gauge(stat, value, tags=tags)


@contextmanager
def timed(name: str, project: str) -> Iterator[None]:
    """
    Time the block and send it to the timer ``name`` of ``project``, also when the block raises.

    :param name: one of this module's timer names
    :param project: the project (DAG id)
    """
    started = time.monotonic()
    try:
        yield
    finally:
        elapsed = timedelta(seconds=time.monotonic() - started)
        for stat, tags in _names(name, project):
            stats.timing(stat, elapsed, tags=tags)


#: The project of a task run outside a DAG run (``operator.execute(...)`` in a script).
NO_PROJECT = "none"


def project_of(context: Mapping[str, Any]) -> str:
    """The project a task works for, as metrics name it: its DAG's id (one DAG per project)."""
    dag_run = context.get("dag_run")
    return str(dag_run.dag_id) if dag_run is not None else NO_PROJECT

"""
Where the status page's rows come from: the projects file, the SFTP folders, Airflow's metadata database.

Each project's folders are read through :class:`PooledSFTPHook` in a thread of its own, all at once
(at most :data:`READS_PER_SERVER` per server). A view waits at most :data:`FIRST_READ_WAIT` seconds
for folders never read before: a row still being read shows "counting…" until its read answers, or
shows an error once it has run ``timeout`` seconds (a silent or broken server). A read still running
from an earlier page is joined rather than started twice, so a hung server costs one thread, not one
per page view. What a read found is shown for :data:`COUNTS_TTL` seconds, then shown while it is
read again in the background (:class:`CachedReads`): no view waits for more than that at 500 projects.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import posixpath
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, wait
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.utils.log.log_reader import TaskLogReader
from sqlalchemy import select
from sqlalchemy.orm import Session

from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.ingestion_status import (
    LastRun,
    ProjectRow,
    dag_id_of,
    failure_reason,
    placeholder_dag_id,
    project_row,
    status_dates,
)
from airflow_outamation.projects import InvalidEntry, Project, parse_projects, seed_defaults
from airflow_outamation.readiness import too_old, waiting_files

T = TypeVar("T")
#: The file the example DAG reads its projects from when ``OUTAMATION_PROJECTS_FILE`` is not set.
PROJECTS_FILE_NAME = "outamation_projects.json"


def projects_file(dags_folder: str) -> Path:
    """``OUTAMATION_PROJECTS_FILE``, else ``outamation_projects.json`` in ``dags_folder``."""
    return Path(os.environ.get("OUTAMATION_PROJECTS_FILE") or Path(dags_folder) / PROJECTS_FILE_NAME)


def read_projects(path: Path) -> tuple[list[Project], list[InvalidEntry]]:
    """Read and check the projects file as the example DAG does (``SftpService``'s variables as defaults)."""
    try:
        return parse_projects(json.loads(path.read_text()), seed_defaults(os.environ))
    except (OSError, ValueError) as exc:
        raise ValueError(f"projects file {path}: {exc}") from None


class BoundedReads:
    """Run calls in daemon threads, wait for them a bounded time, never run one key twice at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, Future[Any]] = {}

    def run(self, calls: Mapping[str, Callable[[], T]], timeout: float) -> dict[str, T | BaseException]:
        """
        Start every call (or join the one of its key still running) and wait at most ``timeout`` s.

        :param calls: key -> call
        :param timeout: seconds to wait for all of them together
        :return: key -> the call's result, its exception, or a :class:`TimeoutError`
        """
        futures: dict[str, Future[Any]] = {}
        starting = []
        with self._lock:
            for key, call in calls.items():
                future = self._running.get(key)
                if future is None:
                    future = self._running[key] = Future()
                    starting.append((key, future, call))
                futures[key] = future
        if starting:  # started by a thread of their own: hundreds of thread starts need not delay the wait
            threading.Thread(target=self._start, args=(starting,), name="status-reads", daemon=True).start()
        wait(futures.values(), timeout=timeout)
        results: dict[str, T | BaseException] = {}
        for key, future in futures.items():
            if not future.done():
                results[key] = TimeoutError(f"no answer within {timeout:g} s")
            else:
                results[key] = future.exception() or future.result()
        return results

    def _start(self, reads: list[tuple[str, Future[Any], Callable[[], Any]]]) -> None:
        for key, future, call in reads:
            threading.Thread(
                target=self._work, args=(key, future, call), name=f"status-{key}", daemon=True
            ).start()

    def _work(self, key: str, future: Future[Any], call: Callable[[], Any]) -> None:
        try:
            future.set_result(call())
        except BaseException as exc:
            future.set_exception(exc)
        finally:
            with self._lock:
                self._running.pop(key, None)


READS = BoundedReads()
#: Folder reads at once per SFTP server (host and port), below OpenSSH's ``MaxStartups`` (10): the other
#: projects on that server wait their turn.
READS_PER_SERVER = 8
_SLOTS: dict[tuple[str | None, int | None], threading.BoundedSemaphore] = {}
_SLOTS_LOCK = threading.Lock()
#: Seconds a project's folder counts are shown as read before a page view reads them again.
COUNTS_TTL = 30.0
#: Seconds a page view waits for folders never read before; those still being read show "counting…".
FIRST_READ_WAIT = 1.0


class StillReading(Exception):
    """A first read of a project's folders that has not answered yet, within the page's timeout."""


class CachedReads:
    """
    The last result of each read, shown for ``ttl`` seconds; after that a view still shows it at once
    and reads again in the background (:class:`BoundedReads`). A read never made before is waited
    for at most ``first_wait`` seconds, then shown as :class:`StillReading` until it answers or ``timeout``
    seconds after it started. A failed read is remembered too: the page shows its error until a read
    succeeds.
    """

    def __init__(self, reads: BoundedReads, ttl: float) -> None:
        self._reads = reads
        self._ttl = ttl
        self._lock = threading.Lock()
        self._results: dict[str, tuple[float, Any]] = {}
        self._first_started: dict[str, float] = {}

    def run(
        self, calls: Mapping[str, Callable[[], T]], timeout: float, first_wait: float = FIRST_READ_WAIT
    ) -> dict[str, T | BaseException]:
        """
        Each key's last result; read (again) what is older than ``ttl``, waiting only for new keys.

        :param calls: key -> call; a key names what the call reads (the same key, the same read)
        :param timeout: seconds after its start a first read without answer becomes a :class:`TimeoutError`
        :param first_wait: seconds to wait for the keys never read before, all together (at most ``timeout``)
        :return: key -> the call's result, its exception, :class:`StillReading` or a :class:`TimeoutError`
        """
        now = time.monotonic()
        with self._lock:
            known = {key: self._results[key] for key in calls if key in self._results}
            for key in calls.keys() - known.keys():
                self._first_started.setdefault(key, now)
        stale = {
            key: call for key, call in calls.items() if key not in known or now - known[key][0] >= self._ttl
        }
        self._reads.run({key: self._remembered(key, stale[key]) for key in stale if key in known}, timeout=0)
        results: dict[str, T | BaseException] = {key: result for key, (_, result) in known.items()}
        new = {key: self._remembered(key, call) for key, call in stale.items() if key not in known}
        self._reads.run(new, min(first_wait, timeout))
        now = time.monotonic()
        with self._lock:
            for key in new:
                if key in self._results:
                    results[key] = self._results[key][1]
                elif now - self._first_started[key] < timeout:
                    results[key] = StillReading()
                else:
                    results[key] = TimeoutError(f"no answer within {timeout:g} s")
        return results

    def _remembered(self, key: str, call: Callable[[], T]) -> Callable[[], T]:
        def remember() -> T:
            try:
                result: Any = call()
            except BaseException as exc:
                result = exc
                raise
            finally:
                with self._lock:
                    self._results[key] = (time.monotonic(), result)
                    self._first_started.pop(key, None)
            return result

        return remember


COUNTS = CachedReads(READS, COUNTS_TTL)


def _server_slots(hook: PooledSFTPHook) -> threading.BoundedSemaphore:
    """The :data:`READS_PER_SERVER` slots of the hook's SFTP server (host and port), for every project."""
    where = hook.location
    with _SLOTS_LOCK:
        return _SLOTS.setdefault((where.host, where.port), threading.BoundedSemaphore(READS_PER_SERVER))


def _folder_counts(project: Project, dates: list[str]) -> dict[str, Any]:
    """The project's folder counts; ``ready`` counts only the input files that can become ready."""
    hook = PooledSFTPHook(ssh_conn_id=project.sftp_conn_id)
    with _server_slots(hook):
        status = hook.project_status(project.base_path, project.source_dir, project.in_progress_dir, dates)
        source = posixpath.join(project.base_path, project.source_dir)
        # The input folder holds files (a recursive project's: maybe in subfolders): which can become ready?
        if status["ready"] or (project.recursive and hook.isdir(source)):
            listing = hook._list_states(source, project.recursive)
            candidates, _ = waiting_files(None, listing, project.readiness)
            status["too_old"] = len(too_old(listing, project.readiness, time.time()))
            status["ready"] = len(candidates) - status["too_old"]
    return status


def _read_key(project: Project, dates: list[str]) -> str:
    """What a project's folder read is known by: its id, settings and days (an edited entry is read anew)."""
    digest = hashlib.sha256(repr((project, dates)).encode()).hexdigest()[:16]  # entries hold lists and dicts
    return f"{project.project_id}-{digest}"


def _read_error(project: Project, exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"SFTP connection {project.sftp_conn_id!r} ({project.base_path}): {exc}"
    return f"{type(exc).__name__}: {exc}"


def last_runs(session: Session, dag_ids: Iterable[str]) -> dict[str, LastRun]:
    """The most recent run of each DAG, with its first failed task and that task's error."""
    runs = {}
    for dag_id in dag_ids:
        run = session.scalars(
            select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.run_after.desc()).limit(1)
        ).first()
        if run is None:
            continue
        failed = session.scalars(
            select(TaskInstance)
            .where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.run_id == run.run_id,
                TaskInstance.state == "failed",
            )
            .order_by(TaskInstance.end_date)
            .limit(1)
        ).first()
        started = run.run_after.isoformat() if run.run_after else None
        runs[dag_id] = LastRun(
            run.run_id,
            str(run.state),
            started,
            failed.task_id if failed else None,
            _task_error(failed) if failed else None,
        )
    return runs


def _task_error(instance: TaskInstance) -> str | None:
    """The failure reason in a task instance's log, or ``None`` when the log cannot be read."""
    try:
        stream, _ = TaskLogReader().read_log_chunks(instance, instance.try_number, {"end_of_log": False})
        return failure_reason(message.model_dump() for message in stream)
    except Exception:  # a missing or remote log must not break the page
        return None


def project_rows(
    session: Session,
    projects: list[Project],
    invalid: list[InvalidEntry],
    dag_url: Callable[[str], str],
    timeout: float,
) -> list[ProjectRow]:
    """
    Every project's row: folder counts read concurrently (at most ``timeout`` s), last run from the database.

    :param session: a metadata database session
    :param projects: the valid entries to show
    :param invalid: the invalid entries to show (with their problems)
    :param dag_url: DAG id -> its page in the UI
    :param timeout: seconds the page waits for the SFTP servers
    """
    now = datetime.now(timezone.utc)
    dates = {p.project_id: status_dates(now, p.timezone, p.date_format) for p in projects}
    runs = last_runs(session, [dag_id_of(p.project_id) for p in projects])  # before the reads hold the CPU
    counts = COUNTS.run(
        {
            _read_key(p, dates[p.project_id]): functools.partial(_folder_counts, p, dates[p.project_id])
            for p in projects
        },
        timeout,
        FIRST_READ_WAIT,
    )
    rows = []
    for p in projects:
        result = counts[_read_key(p, dates[p.project_id])]
        failed = isinstance(result, BaseException) and not isinstance(result, StillReading)
        row = project_row(
            p.project_id,
            dag_url(dag_id_of(p.project_id)),
            None if isinstance(result, BaseException) else result,
            dates[p.project_id][0],
            runs.get(dag_id_of(p.project_id)),
            _read_error(p, result) if failed else None,  # type: ignore[arg-type]
        )
        rows.append(replace(row, counting=True) if isinstance(result, StillReading) else row)
    for entry in invalid:
        name = entry.project_id or f"entry{entry.index}"
        url = dag_url(placeholder_dag_id(entry.project_id, entry.index))
        rows.append(project_row(name, url, None, "", None, entry.message))
    return rows

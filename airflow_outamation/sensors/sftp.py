"""ReadyFilesSensor: wait for fully uploaded files in an SFTP folder, in the triggerer by default."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException

from airflow_outamation import metrics
from airflow_outamation.assets import announced_files
from airflow_outamation.batching import as_limit, name_list
from airflow_outamation.exceptions import OutamationError, SFTPConnectError
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.hooks.sftp_errors import SFTPLocation, unreachable_error
from airflow_outamation.readiness import Listing
from airflow_outamation.triggers.sftp import ReadyFilesTrigger, error_from_event, progress_line

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Seconds the deferral's timeout runs past the trigger's own deadline, as a backstop.
DEFERRAL_GRACE = 120.0


class ReadyFilesSensor(BaseSensorOperator):
    """
    Wait until ``directory`` holds files that finished uploading; return them for the claim step.

    Deferrable (the default), it looks once in the worker (files already waiting, e.g. a backlog,
    are passed on at once) and otherwise waits in the triggerer through :class:`ReadyFilesTrigger`,
    sharing pooled SFTP connections with every other sensor there. With ``deferrable=False`` it pokes (or
    reschedules, with ``mode="reschedule"``) through ``PooledSFTPHook.list_ready_files``. Both
    apply :mod:`airflow_outamation.readiness` and push up to ``max_files`` ready files, as
    ``RemoteFile.to_dict()`` dicts (path, filename, size, mtime), to XCom. In a run started by the
    watcher of ``directory`` (an event-mode project, see
    :func:`~airflow_outamation.assets.ready_files_asset`), the files its events announced as
    stable need no second look: when they are the only files waiting, unchanged, the run does not
    wait ``stability_delay`` again.

    Transient SFTP failures are retried until ``timeout``. ``timeout`` and ``soft_fail`` work as in
    any sensor (with ``soft_fail`` a run that finds no file is skipped), but a permanent error
    (credentials, host key, missing directory) fails the task even with ``soft_fail``, and so does
    a wait that ends while the server is unreachable (``SFTPConnectError`` naming host:port and
    for how long): an outage or a misconfigured connection is never mistaken for an empty folder.

    :param sftp_conn_id: Airflow ``sftp`` connection
    :param directory: remote directory to watch (templated)
    :param pattern: case-insensitive glob the file names must match (templated)
    :param stability_delay: seconds a file's size and mtime must stay unchanged (templated)
    :param min_age: seconds since its last modification a file must have
    :param min_size: smallest size in bytes that counts (1 skips empty files)
    :param max_files: most files one run passes on (the first by name; templated); ``None`` for all;
        the others stay in the folder for the next run
    :param deferrable: wait in the triggerer instead of in a worker slot; default: Airflow's
        ``[operators] default_deferrable``, or True when it is not set
    :param project_root: the project's configured folder (templated): ``directory`` must lie inside
        it as the server resolves it (symbolic links followed), else the task fails; ``None``: not checked
    :param skip_scheduled: skip at once, without looking, in a run the clock started (an event-mode
        project's sweep run, which only does the housekeeping: the watcher's runs claim the files)
    """

    template_fields: Sequence[str] = ("directory", "pattern", "stability_delay", "max_files", "project_root")
    ui_color = "#d6eaf8"

    def __init__(
        self,
        *,
        sftp_conn_id: str,
        directory: str,
        pattern: str = "*.pdf",
        stability_delay: float = 1.2,
        min_age: float = 0,
        min_size: int = 1,
        max_files: int | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=True),
        project_root: str | None = None,
        skip_scheduled: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.skip_scheduled = skip_scheduled
        self.sftp_conn_id = sftp_conn_id
        self.directory = directory
        self.pattern = pattern
        self.stability_delay = stability_delay
        self.min_age = min_age
        self.min_size = min_size
        self.max_files = max_files
        self.deferrable = deferrable
        self.project_root = project_root
        self._unreachable: tuple[float, SFTPConnectError, SFTPLocation] | None = None
        self._progress = ""

    def execute(self, context: Context) -> Any:
        """Look once; defer to the triggerer only when no file is ready yet (or poke without deferring)."""
        if self.skip_scheduled and context["dag_run"].run_type == "scheduled":
            raise AirflowSkipException("A sweep run: it only does the housekeeping; the watcher's runs claim")
        self.log.info(
            "Watching %s for %s every %g s for up to %g s (a file is ready once unchanged for %s s)",
            self.directory,
            self.pattern,
            self.poke_interval,
            self.timeout,
            self.stability_delay,
        )
        if self.project_root:
            PooledSFTPHook(ssh_conn_id=self.sftp_conn_id).confine(self.directory, self.project_root)
        if not self.deferrable:
            try:
                return super().execute(context)
            except (AirflowSensorTimeout, AirflowSkipException) as stop:
                if self.soft_fail and isinstance(stop.__cause__, OutamationError):
                    raise stop.__cause__ from None  # soft_fail skips an AirflowFailException: not ours
                if self._unreachable is None:
                    raise
                since, failure, where = self._unreachable
                raise unreachable_error(self.directory, where, time.monotonic() - since, failure) from None
        first_look = self.poke(context)  # a backlog needs no round trip through the triggerer
        if first_look.is_done:
            return first_look.xcom_value
        self.defer(
            trigger=ReadyFilesTrigger(
                sftp_conn_id=self.sftp_conn_id,
                directory=self.directory,
                pattern=self.pattern,
                stability_delay=float(self.stability_delay),
                min_age=self.min_age,
                min_size=self.min_size,
                max_files=as_limit(self.max_files),
                poke_interval=self.poke_interval,
                deadline=time.time() + self.timeout,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + DEFERRAL_GRACE),
        )

    def poke(self, context: Context) -> PokeReturnValue:
        hook = PooledSFTPHook(ssh_conn_id=self.sftp_conn_id)
        try:
            ready = hook.list_ready_files(
                self.directory,
                pattern=self.pattern,
                stability_delay=float(self.stability_delay),
                min_age=self.min_age,
                min_size=self.min_size,
                announced=self._announced(context),
            )
        except SFTPConnectError as exc:
            self.log.warning("Transient SFTP failure, poking again: %s", exc)
            since = self._unreachable[0] if self._unreachable else time.monotonic()
            self._unreachable = (since, exc, hook.location)
            return PokeReturnValue(is_done=False)
        self._unreachable = None
        files = [file.to_dict() for file in ready[: as_limit(self.max_files)]]
        if files:
            self._passed_on(files, len(ready), metrics.project_of(context))
        else:
            line = progress_line(self.pattern, self.directory, self.poke_interval, 0)
            if line != self._progress:  # only what changed, not every poke
                self.log.info(line)
                self._progress = line
        return PokeReturnValue(is_done=bool(files), xcom_value=files)

    def _announced(self, context: Context) -> Listing | None:
        """
        The files the input folder's watcher announced in the events that started this run, if any.

        The run still takes every ready file of the folder, announced or not: Airflow leaves events
        that arrive while a run waits for ``max_active_runs`` out of that run and starts no run for
        them until yet another event comes (apache/airflow#56050); their files are taken here.
        """
        events = context.get("triggering_asset_events") or {}
        announced = announced_files(
            [event for asset_events in events.values() for event in asset_events], self.directory
        )
        if announced:
            self.log.info(
                "The watcher announced %d file(s) in the events of this run: no second look when they "
                "are the only files waiting, unchanged",
                len(announced),
            )
        return announced

    def _passed_on(self, files: list[dict[str, Any]], ready: int, project: str) -> None:
        """Log and count the ready files passed on to the claim step."""
        self.log.info(
            "%d ready file(s) in %s, passing on %d: %s",
            ready,
            self.directory,
            len(files),
            name_list([str(file["filename"]) for file in files]),
        )
        metrics.count(metrics.FILES_READY, len(files), project)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Return the trigger's ready files, or raise the error or timeout it reported."""
        if event.get("status") == "timeout" and event.get("reachable"):
            raise AirflowSensorTimeout(event["message"])
        if event.get("status") != "success":
            raise error_from_event(event)
        self._passed_on(event["files"], len(event["files"]), metrics.project_of(context))
        return event["files"]

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """As in any sensor, except that ``soft_fail`` never turns a reported SFTP error into a skip."""
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSkipException as skip:
            if self.soft_fail and isinstance(skip.__cause__, OutamationError):
                raise skip.__cause__ from None
            raise

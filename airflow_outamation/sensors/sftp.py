"""ReadyFilesSensor: wait for fully uploaded files in an SFTP folder, in the triggerer by default."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException
from airflow.sdk.listener import get_listener_manager

from airflow_outamation import metrics
from airflow_outamation.assets import EVENT_FILES_LISTED, announced_files
from airflow_outamation.batching import as_limit, name_list
from airflow_outamation.exceptions import OutamationError, SFTPConnectError
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.hooks.sftp_errors import SFTPLocation, unreachable_error
from airflow_outamation.readiness import Listing, ReadinessSettings, RemoteFile, loose_settings, settings_dict
from airflow_outamation.ready_summary import is_ready_summary, ready_summary, sensor_xcom
from airflow_outamation.triggers.sftp import ReadyFilesTrigger, error_from_event, progress_line

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Seconds the deferral's timeout runs past the trigger's own deadline, as a backstop.
DEFERRAL_GRACE = 120.0


def task_listeners() -> bool:
    """Whether a plugin listens to task instances ending (OpenLineage does): they see a resumed end only."""
    hooks = get_listener_manager().hook
    return bool(
        hooks.on_task_instance_success.get_hookimpls() or hooks.on_task_instance_failed.get_hookimpls()
    )


class ReadyFilesSensor(BaseSensorOperator):
    """
    Wait until ``directory`` holds files that finished uploading; return them for the claim step.

    Deferrable (the default), it looks once in the worker (files already waiting, e.g. a backlog,
    are passed on at once) and otherwise waits in the triggerer through :class:`ReadyFilesTrigger`,
    sharing pooled SFTP connections with every other sensor there. With ``deferrable=False`` it pokes (or
    reschedules, with ``mode="reschedule"``) through ``PooledSFTPHook.list_ready_files``. Both
    apply :mod:`airflow_outamation.readiness` and pass on up to ``max_files`` ready files through
    XCom as a summary whose size does not grow with their number:
    :func:`~airflow_outamation.ready_summary.ready_summary` (``directory``, ``file_count``, the
    first files as ``RemoteFile.to_dict()`` dicts, a ``digest`` of them all) and the ``readiness``
    settings; :class:`~airflow_outamation.operators.sftp.ClaimFilesOperator` finds the files again
    in one listing. In a run started by the
    watcher of ``directory`` (an event-mode project, see
    :func:`~airflow_outamation.assets.ready_files_asset`), the files its events announced as
    stable need no second look: when they are the only files waiting, unchanged, the run does not
    wait ``stability_delay`` again. With ``end_in_triggerer`` a deferred wait that finds files ends
    the task in the triggerer: the trigger returns that summary as the task's XCom, so no worker
    starts again only to pass it on (about a second of every run, and a task process). On Airflow
    3.3.2 that XCom then reads as its JSON text (an Airflow bug), which
    :class:`~airflow_outamation.operators.sftp.ClaimFilesOperator` takes too. It resumes on a worker
    instead where a plugin listens to task instances (OpenLineage does): they would miss its end.

    Transient SFTP failures are retried until ``timeout``. ``timeout`` and ``soft_fail`` work as in
    any sensor (with ``soft_fail`` a run that finds no file is skipped), but a permanent error
    (credentials, host key, missing directory) fails the task even with ``soft_fail``, and so does
    a wait that ends while the server is unreachable (``SFTPConnectError`` naming host:port and
    for how long): an outage or a misconfigured connection is never mistaken for an empty folder.

    :param sftp_conn_id: Airflow ``sftp`` connection
    :param directory: remote directory to watch (templated)
    :param settings: which files are ready (:class:`~airflow_outamation.readiness.ReadinessSettings`):
        ``pattern`` or ``regex``, ``stability_delay``, ``min_age``, ``min_size``, ...; default: the
        defaults. Each may also be given on its own (``stability_delay="{{ params.stability_delay }}"``),
        overriding ``settings``; together they are the templated dict ``readiness``.
    :param max_files: most files one run passes on (the first by name; templated); ``None`` for all;
        the others stay in the folder for the next run
    :param deferrable: wait in the triggerer instead of in a worker slot; default: Airflow's
        ``[operators] default_deferrable``, or True when it is not set
    :param project_root: the project's configured folder (templated): ``directory`` must lie inside
        it as the server resolves it (symbolic links followed), else the task fails; ``None``: not checked
    :param skip_scheduled: skip at once, without looking, in a run the clock started (an event-mode
        project's sweep run, which only does the housekeeping: the watcher's runs claim the files)
    :param end_in_triggerer: a deferred wait that finds files ends the task in the triggerer (True,
        unless a plugin listens to task instances), or resumes it on a worker (False, the default),
        which returns the same XCom as a dict
    """

    template_fields: Sequence[str] = ("directory", "readiness", "max_files", "project_root")
    ui_color = "#d6eaf8"

    def __init__(
        self,
        *,
        sftp_conn_id: str,
        directory: str,
        settings: ReadinessSettings | None = None,
        max_files: int | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=True),
        project_root: str | None = None,
        skip_scheduled: bool = False,
        end_in_triggerer: bool = False,
        **kwargs: Any,
    ) -> None:
        loose = loose_settings(kwargs)
        super().__init__(**kwargs)
        self.readiness = settings_dict(settings, **loose)
        self.skip_scheduled = skip_scheduled
        # Not ``end_from_trigger``, Airflow's name: DagBag.bag_dag refuses a DAG with a task whose
        # ``end_from_trigger`` is set while any plugin listener is registered, even one of DAG runs only
        # such as this provider's run notes, which misses nothing of a task that ends in the triggerer
        # (its side effects: apache/airflow#49347). The sensor checks for task listeners itself.
        self.end_in_triggerer = end_in_triggerer
        self.sftp_conn_id = sftp_conn_id
        self.directory = directory
        self.max_files = max_files
        self.deferrable = deferrable
        self.project_root = project_root
        self._unreachable: tuple[float, SFTPConnectError, SFTPLocation] | None = None
        self._progress = ""

    @property
    def settings(self) -> ReadinessSettings:
        """The readiness settings, from ``readiness`` as rendered."""
        return ReadinessSettings.from_dict(self.readiness)

    def execute(self, context: Context) -> Any:
        """Look once; defer to the triggerer only when no file is ready yet (or poke without deferring)."""
        if self.skip_scheduled and context["dag_run"].run_type == "scheduled":
            raise AirflowSkipException("A sweep run: it only does the housekeeping; the watcher's runs claim")
        settings = self.settings
        self.log.info(
            "Watching %s for %s every %g s for up to %g s (a file is ready once unchanged for %g s)",
            self.directory,
            settings.names,
            self.poke_interval,
            self.timeout,
            settings.stability_delay,
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
                settings=settings,
                max_files=as_limit(self.max_files),
                poke_interval=self.poke_interval,
                deadline=time.time() + self.timeout,
                end_from_trigger=self.end_in_triggerer and not task_listeners(),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + DEFERRAL_GRACE),
        )

    def poke(self, context: Context) -> PokeReturnValue:
        hook = PooledSFTPHook(ssh_conn_id=self.sftp_conn_id)
        try:
            ready = hook.list_ready_files(
                self.directory, settings=self.settings, announced=self._announced(context)
            )
        except SFTPConnectError as exc:
            self.log.warning("Transient SFTP failure, poking again: %s", exc)
            since = self._unreachable[0] if self._unreachable else time.monotonic()
            self._unreachable = (since, exc, hook.location)
            return PokeReturnValue(is_done=False)
        self._unreachable = None
        files = ready[: as_limit(self.max_files)]
        if not files:
            line = progress_line(self.settings.names, self.directory, self.poke_interval, 0)
            if line != self._progress:  # only what changed, not every poke
                self.log.info(line)
                self._progress = line
            return PokeReturnValue(is_done=False)
        summary = ready_summary(self.directory, files, EVENT_FILES_LISTED)
        self._passed_on(summary, len(ready), metrics.project_of(context))
        return PokeReturnValue(is_done=True, xcom_value=sensor_xcom(summary, self.settings))

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

    def _passed_on(self, summary: dict[str, Any], ready: int, project: str) -> None:
        """Log and count the ready files passed on to the claim step."""
        names = [str(file["filename"]) for file in summary["files"]]
        self.log.info(
            "%d ready file(s) in %s, passing on %d: %s",
            ready,
            self.directory,
            summary["file_count"],
            name_list(names, total=summary["file_count"]),
        )
        metrics.count(metrics.FILES_READY, summary["file_count"], project)

    def execute_complete(self, context: Context, event: dict[str, Any] | str) -> Any:
        """Return the trigger's summary of the ready files, or raise the error or timeout it reported."""
        if isinstance(event, str):  # "success"
            # dag.test() (``airflow dags test``) resumes a task that its trigger ended, with "success"
            # for the event and without the trigger's XCom (Airflow 3.3.2, airflow.sdk.definitions.dag
            # ._run_task): look once more, the files the trigger found are ready.
            return self.poke(context).xcom_value
        if event.get("status") == "timeout" and event.get("reachable"):
            raise AirflowSensorTimeout(event["message"])
        if event.get("status") != "success":
            raise error_from_event(event)
        if is_ready_summary(event):
            summary = {key: event[key] for key in ("directory", "file_count", "files", "digest")}
        else:  # every file, as a triggerer running an older version sends it
            files = [RemoteFile.from_dict(file) for file in event["files"]]
            summary = ready_summary(self.directory, files, EVENT_FILES_LISTED)
        self._passed_on(summary, summary["file_count"], metrics.project_of(context))
        return sensor_xcom(summary, self.settings)

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """As in any sensor, except that ``soft_fail`` never turns a reported SFTP error into a skip."""
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSkipException as skip:
            if self.soft_fail and isinstance(skip.__cause__, OutamationError):
                raise skip.__cause__ from None
            raise

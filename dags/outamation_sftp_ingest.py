"""
Outamation SFTP ingestion: one DAG per project, scheduled and triggerable from the UI.

    resend_unsent -> wait_for_files (deferrable) -> claim_files -> submit_batches (every batch, 8 in flight)
        -> project_status, check_run
    resend_unsent -> check_alerts -> check_run

``resend_unsent`` comes first, so it never races this run's own sends (one run at a time by
default), and it runs every run, also when no new file arrives and the rest is skipped: it resends
the batches earlier runs left unsent (under their original ids), finishes interrupted moves and
deletes, gives up on a batch after ``max_send_attempts`` failed sends (rejected folder) and
removes the records of claims finished more than ``retention_days`` ago. ``project_status`` logs
the project at a glance whatever happened before; beside it, ``check_run`` succeeds, or fails the
run with one line naming the tasks that failed (a run ending with a successful status task would
otherwise count as a success; a failed status task fails the run itself).
``check_alerts`` judges the entry's expectations (``expect_files_by``, ``max_unsent_age``,
``alert_on_rejected``, ``max_unreachable``) early in every run, while ``wait_for_files`` may still wait,
and sends one message per alert started or cleared to the entry's ``alert_targets`` (a start quotes the
error the run's failed tasks left, or those of the previous check's run).

An entry with ``"schedule": "event"`` is scheduled on its input folder's Asset instead of a clock: the
Asset's watcher (:class:`~airflow_outamation.triggers.sftp_event.ReadyFilesEventTrigger`, in the triggerer)
starts a run when files finished uploading, and ``wait_for_files`` then looks without deferring (one
listing when only the files the watcher announced wait, unchanged) and skips the run if an earlier
one took the files. Manual runs of such a DAG look the same way, with two listings. In event mode a run
that claims is three tasks (``wait_for_files -> claim_files -> submit_batches``) and runs overlap
(claims are exclusive, sends leased); the housekeeping (``resend_unsent -> project_status,
check_alerts -> check_run``) runs only in a run that claims nothing: the sweep run the clock starts
every ``sweep_interval`` seconds (``AssetOrTimeSchedule``), whose ``wait_for_files`` skips at once.

A run claims at most ``max_files_per_run`` files (5,000 by default; the rest wait in the input folder
for the next run) and sends all their batches in one task, so a backlog costs a handful of Airflow
tasks per run, not one per batch. ``base_path`` given in the trigger form may only narrow the
project's folder (a subfolder), never point elsewhere. Every task has an ``execution_timeout``
derived from its entry (:func:`task_timeouts`).

Projects are listed in ``outamation_projects.json`` beside this file (or the file named by
``OUTAMATION_PROJECTS_FILE``): adding a project is adding an entry, checked against the schema of
:mod:`airflow_outamation.projects`. An invalid entry does not stop the others: it becomes a paused,
unscheduled DAG ``outamation_sftp_ingest-invalid-<entry index>-<project_id>`` whose description names
the problem (two entries whose folders are equal or nested are both invalid). No URL's credentials or
query show in what the UI shows of a DAG.
Credentials live in the two Airflow connections each entry names. ``SftpService``'s environment variables
give defaults: ``SOURCE_FILES`` (input folder, ``input``), ``IN_Progress_Path`` (``in_progress``) and
``PROFILE_CODE``; ``DOC_AI_API_URL`` is used when neither the entry nor the connection has a URL.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import posixpath
import re
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow.sdk import (
    DAG,
    Asset,
    AssetOrTimeSchedule,
    Context,
    DeltaTriggerTimetable,
    Param,
    TriggerRule,
    get_parsing_context,
)
from airflow.sdk.bases.operator import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_outamation.alerts.check import AlertCheck, project_expectations
from airflow_outamation.assets import in_progress_asset, ready_files_asset
from airflow_outamation.hooks.document_api import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, display_url
from airflow_outamation.ingestion_status import (
    FAILURE_KEY,
    OUTCOME_TASK,
    dag_id_of,
    placeholder_dag_id,
)
from airflow_outamation.operators.alerts import CheckAlertsOperator, run_failures
from airflow_outamation.operators.document_api import ResendUnsentOperator, SubmitBatchesOperator
from airflow_outamation.operators.sftp import ClaimFilesOperator, ProjectStatusOperator
from airflow_outamation.projects import (
    EVENT_SCHEDULE,
    MAX_BATCH_SIZE,
    MAX_FILES_PER_RUN,
    MAX_STABILITY_DELAY,
    InvalidEntry,
    Project,
    confine_path,
    parse_projects,
    seed_defaults,
    url_scrubber,
)
from airflow_outamation.sensors.sftp import ReadyFilesSensor
from airflow_outamation.triggers.sftp_event import ReadyFilesEventTrigger

PROJECTS_FILE = Path(
    os.environ.get("OUTAMATION_PROJECTS_FILE", Path(__file__).with_name("outamation_projects.json"))
)
#: ``SftpService``'s environment variables, defaults of every entry.
ENV_DEFAULTS = seed_defaults(os.environ)
#: How long a run waits for files before it ends as skipped (nothing to do this time).
WAIT_TIMEOUT = timedelta(minutes=int(os.environ.get("OUTAMATION_WAIT_MINUTES", "10")))
#: The run's project folder: the ``base_path`` param, confined to the entry's ``base_path``.
PROJECT_FOLDER = "{{ project_folder(params.base_path) }}"
START_DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)
#: The least time a task gets before Airflow stops it (its ``execution_timeout``).
TASK_TIME_FLOOR = timedelta(minutes=10)
#: Seconds a claim may spend per file (renames and records over a slow link).
CLAIM_SECONDS_PER_FILE = 0.05


def task_timeouts(project: Project) -> dict[str, timedelta]:
    """
    Each task's ``execution_timeout``: the floor plus the most time the entry's settings give it.

    Sending: every file of a run in a batch of its own, each attempt of each taking the API connection's
    default ``timeout``, ``max_in_flight`` at a time. Waiting: the sensor's wait (none in event mode) and
    two listings the longest stability delay apart. Claiming: :data:`CLAIM_SECONDS_PER_FILE` per file.
    """
    attempts = DEFAULT_MAX_RETRIES + 1
    sending = timedelta(
        seconds=math.ceil(project.max_files_per_run / project.max_in_flight) * DEFAULT_TIMEOUT * attempts
    )
    waiting = timedelta(0) if project.schedule == EVENT_SCHEDULE else WAIT_TIMEOUT
    waiting += timedelta(seconds=2 * MAX_STABILITY_DELAY)
    claiming = timedelta(seconds=project.max_files_per_run * CLAIM_SECONDS_PER_FILE)
    return {
        "resend_unsent": TASK_TIME_FLOOR + sending,
        "wait_for_files": TASK_TIME_FLOOR + waiting,
        "claim_files": TASK_TIME_FLOOR + claiming,
        "submit_batches": TASK_TIME_FLOOR + sending,
        "project_status": TASK_TIME_FLOOR,
        "check_run": TASK_TIME_FLOOR,
        "check_alerts": TASK_TIME_FLOOR,
    }


def folder_macro(root: str) -> Callable[[str], str]:
    """A template macro confining a run's ``base_path`` to ``root``; a path outside fails the task."""

    def project_folder(requested: str) -> str:
        try:
            return confine_path(requested, root)
        except ValueError as exc:  # fail at once: retrying the same run conf cannot help
            raise AirflowFailException(str(exc)) from None

    return project_folder


#: A sample day for the date folder's example in the form and docs (a fixed one: the DAG stays the same).
SAMPLE_DAY = datetime(2026, 12, 5, tzinfo=timezone.utc)


def date_folder(project: Project) -> str:
    """The claim folder's name as its format and an example, e.g. ``<%m%d%Y>, e.g. 12052026``."""
    return f"<{project.date_format}>, e.g. {SAMPLE_DAY.strftime(project.date_format)}"


def folder_pattern(root: str) -> str:
    """
    A ``pattern`` for the ``base_path`` param that the form and the trigger API check: ``root``, a
    folder below it or a relative subfolder, no ``..`` segment, no control character (see
    :func:`~airflow_outamation.projects.confine_path`, which the tasks still apply).
    """
    literal = re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", root.strip("/"))
    inside = rf"/+{literal}(/.*)?" if literal else "/.*"
    return rf"^(?!(.*/)?\.\.(/|$))(?!.*[\x00-\x1f\x7f])({inside}|[^/\s].*)$"


def _between(low: float, high: float) -> dict[str, object]:
    """
    Bounds the trigger API checks but the form does not clamp: the UI's number field silently turns a
    value outside ``minimum``/``maximum`` into the nearest bound, so they go inside ``allOf``.
    """
    return {"allOf": [{"minimum": low, "maximum": high}]}


def project_params(project: Project) -> dict[str, Param]:
    """The trigger form of a project's DAG: titled params, defaults from its entry, checked on trigger."""
    scrub = url_scrubber(dataclasses.astuple(project))
    return {
        "base_path": Param(
            project.base_path,
            type="string",
            minLength=1,
            pattern=folder_pattern(project.base_path),
            title="Project folder",
            description=scrub(
                f"Folder on the SFTP server: {project.base_path} or a folder inside it (no '..'). Files "
                f"are read from its '{project.source_dir}' folder and claimed into "
                f"'{project.in_progress_dir}/{date_folder(project)}'."
            ),
        ),
        "profile_code": Param(
            project.profile_code,
            type="string",
            minLength=1,
            title="Profile code",
            description="Document API processing profile sent with every batch, exactly as typed.",
        ),
        "uploaded_by": Param(
            project.uploaded_by,
            type="string",
            minLength=1,
            title="Uploaded by",
            description="Sent with every batch, exactly as typed.",
        ),
        "source": Param(
            project.source,
            type="string",
            minLength=1,
            title="Source",
            description="Where the files came from; sent with every batch, exactly as typed.",
        ),
        "batch_size": Param(
            project.batch_size,
            type="integer",
            **_between(1, MAX_BATCH_SIZE),
            title="Batch size",
            description=f"Files per API call (1 to {MAX_BATCH_SIZE}).",
        ),
        "max_files_per_run": Param(
            project.max_files_per_run,
            type="integer",
            **_between(1, MAX_FILES_PER_RUN),
            title="Most files per run",
            description=f"Most files this run claims (1 to {MAX_FILES_PER_RUN:,}); the others wait for "
            "the next run.",
        ),
        "stability_delay": Param(
            project.stability_delay,
            type="number",
            **_between(0, MAX_STABILITY_DELAY),
            title="Stability delay (seconds)",
            description=f"Seconds (0 to {MAX_STABILITY_DELAY}) a file's size and mtime must stay "
            "unchanged before it counts as fully uploaded.",
        ),
    }


def watched_asset(project: Project) -> Asset:
    """The Asset of an event-mode project's input folder, with the watcher that announces ready files."""
    directory = posixpath.join(confine_path(project.base_path, project.base_path), project.source_dir)
    trigger = ReadyFilesEventTrigger(
        sftp_conn_id=project.sftp_conn_id,
        directory=directory,
        project_id=project.project_id,
        settings=project.readiness,
        max_files=project.max_files_per_run,
        poke_interval=project.poke_interval,
    )
    return ready_files_asset(project.project_id, trigger)


def event_schedule(project: Project) -> list[Asset] | AssetOrTimeSchedule:
    """
    An event-mode project's schedule: its watched input folder, and a sweep run every ``sweep_interval``
    seconds (unless ``null``) that resends unsent batches and does the housekeeping when no file arrives.
    """
    assets = [watched_asset(project)]
    if project.sweep_interval is None:
        return assets
    sweep = DeltaTriggerTimetable(timedelta(seconds=project.sweep_interval))
    return AssetOrTimeSchedule(timetable=sweep, assets=assets)


def project_doc(project: Project) -> str:
    """The DAG's documentation: where its files come from and go, and how to resend a batch."""
    asset = in_progress_asset(project.project_id)
    if project.schedule == EVENT_SCHEDULE:
        schedule = (
            f"when files are ready (watcher of `outamation://{project.project_id}/input`, "
            f"polling every {project.poke_interval:g} s); a run claims what is ready and ends"
        )
        if project.sweep_interval is not None:
            schedule += f"; a sweep run every {project.sweep_interval:g} s resends unsent batches"
    else:
        schedule = f"`{project.schedule}`" if project.schedule else "none (triggered by hand)"
    url = f" (URL `{display_url(project.api_url)}`)" if project.api_url else ""
    claimed_into = f"{project.base_path}/{project.in_progress_dir}/{date_folder(project)}"
    selection = f"files matching `{project.readiness.names}`"
    if project.max_age is not None:
        selection += f"; files older than {project.max_age:g} s are left alone (status: *Too old*)"
    if project.done_marker is not None:
        selection += f"; each ready only beside its `<name>{project.done_marker}` marker"
    if project.recursive:
        selection += "; files in subfolders too, claimed flat into the date folder"
    if project.max_size is not None:
        selection += f"; files over {project.max_size} bytes go to `rejected/<date>/` unsent"
    task_order = (
        "wait_for_files -> claim_files -> submit_batches; in a run that claims nothing (the sweep): "
        "resend_unsent -> project_status, check_alerts -> check_run"
        if project.schedule == EVENT_SCHEDULE
        else "resend_unsent -> wait_for_files -> claim_files -> submit_batches -> project_status, check_run"
    )
    alerts = "; ".join(project_expectations(project).describe()) + (
        f" (to {', '.join(f'{k}: {v}' for k, v in project.alert_targets.items())})"
        if project.alert_targets
        else " (no alert_targets: logged only)"
    )
    return url_scrubber(dataclasses.astuple(project))(f"""\
### Project `{project.project_id}`

| | |
|---|---|
| SFTP connection | `{project.sftp_conn_id}` |
| Document API connection | `{project.document_api_conn_id}`{url} |
| Input folder | `{project.base_path}/{project.source_dir}` ({selection}) |
| Claimed into | `{claimed_into}`, the run's date in {project.timezone} |
| Schedule | {schedule}; runs at once, at most: {project.max_active_runs} |
| Asset | `{asset.uri}`: `schedule=[in_progress_asset("{project.project_id}")]` |
| Alerts | {alerts} |

{task_order}.
Each accepted batch gets a receipt in `<in_progress>/<date>/.claims/sent/`; then its files are
handled per `completion` (`{project.completion}`): kept, moved to `{project.base_path}/processed/<date>/`,
or deleted. A batch the API refuses for good (HTTP 4xx but 408/429), or that failed
{project.max_send_attempts} times, is moved to `{project.base_path}/rejected/<date>/` with a
`<message id>.json` beside its files; move the files (not the .json) back to
`{project.base_path}/{project.source_dir}` to send them again. **Resending a batch**: automatic,
every run's `resend_unsent` resends the batches without a receipt under their original message ids
(the API can de-duplicate them); clearing `submit_batches` of a run does the same at once. A
failure the run cannot heal (credentials, host key, missing folder) fails at once without retries:
fix the cause, then clear the task.
""")


#: What the DAG list shows after a project's name when it does not run on a clock.
RUNS_HOW: dict[str | None, str] = {None: " (manual only)", EVENT_SCHEDULE: " (runs when files are ready)"}


def dag_description(project: Project) -> str:
    """The DAG list's description: how the project runs (manual, event mode), then where files go."""
    route = f"SFTP {project.base_path}/{project.source_dir} -> document API, project {project.project_id}"
    if project.schedule is None:
        return f"Manual only: {route}"
    if project.schedule == EVENT_SCHEDULE:
        return (
            f"Runs when files are ready in {project.base_path}/{project.source_dir} (watched only while "
            f"unpaused): {route}"
        )
    return route


def build_dag(project: Project) -> DAG:
    """The ingestion DAG of one valid project entry."""
    project_id = project.project_id
    event_mode = project.schedule == EVENT_SCHEDULE
    timeouts = task_timeouts(project)
    # The tasks after the send run whatever came before; in event mode not in a run that claimed (no
    # task process there: a run that sends is three tasks, and Airflow fails it when one fails).
    housekeeping_rule = TriggerRule.NONE_SKIPPED if event_mode else TriggerRule.ALL_DONE
    with DAG(
        dag_id=dag_id_of(project_id),
        dag_display_name=f"Outamation SFTP ingest: {project_id}{RUNS_HOW.get(project.schedule, '')}",
        description=dag_description(project),
        schedule=event_schedule(project) if event_mode else project.schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=project.max_active_runs,
        params=project_params(project),
        default_args={
            "owner": project.owner,
            "retries": 2,
            "retry_delay": timedelta(minutes=1),
            "on_failure_callback": record_failure,
        },
        tags=["outamation", "sftp", project_id],
        doc_md=project_doc(project),
        user_defined_macros={"project_folder": folder_macro(project.base_path)},
    ) as dag:
        resend_unsent = ResendUnsentOperator(
            task_id="resend_unsent",
            execution_timeout=timeouts["resend_unsent"],
            sftp_conn_id=project.sftp_conn_id,
            base_path=PROJECT_FOLDER,
            in_progress_dir=project.in_progress_dir,
            document_api_conn_id=project.document_api_conn_id,
            api_url=project.api_url,
            max_in_flight=project.max_in_flight,
            completion=project.completion,
            completion_after=project.completion_after,
            resend_after=project.resend_after or 0,
            max_attempts=project.max_send_attempts,
            retention_days=project.retention_days,
            retries=0,  # the next run tries again
            # Event mode: only when wait_for_files skipped (a sweep run, or nothing left to claim).
            trigger_rule=TriggerRule.ALL_SKIPPED if event_mode else TriggerRule.ALL_SUCCESS,
            max_active_tis_per_dag=1,  # overlapping runs (event mode) keep their housekeeping one at a time
        )
        wait_for_files = ReadyFilesSensor(
            task_id="wait_for_files",
            execution_timeout=timeouts["wait_for_files"],
            trigger_rule=TriggerRule.ALL_DONE,  # new files are claimed even if the resend failed
            sftp_conn_id=project.sftp_conn_id,
            directory=f"{PROJECT_FOLDER}/{project.source_dir}",
            settings=project.readiness,
            stability_delay="{{ params.stability_delay }}",
            max_files="{{ params.max_files_per_run }}",
            poke_interval=project.poke_interval,
            # Event mode: the watcher started this run for ready files: look once, skip if a run before
            # took them. Otherwise wait in the triggerer for files to arrive.
            deferrable=not event_mode,
            project_root=project.base_path,
            timeout=0 if event_mode else WAIT_TIMEOUT.total_seconds(),
            soft_fail=True,
            skip_scheduled=event_mode,  # a sweep run does the housekeeping only
            end_in_triggerer=True,  # no worker resumes it only to pass the files on
        )
        claim_files = ClaimFilesOperator(
            task_id="claim_files",
            execution_timeout=timeouts["claim_files"],
            sftp_conn_id=project.sftp_conn_id,
            base_path=PROJECT_FOLDER,
            files=wait_for_files.output,
            source_dir=project.source_dir,
            in_progress_dir=project.in_progress_dir,
            date_format=project.date_format,
            timezone=project.timezone,
            max_files="{{ params.max_files_per_run }}",
            name_encoding=project.name_encoding,
            project_root=project.base_path,
            done_marker=project.done_marker,
            recursive=project.recursive,
            return_summary=True,  # XCom stays small; submit_batches reads the files from the claim's record
            outlets=[in_progress_asset(project_id)],
        )
        submit_batches = SubmitBatchesOperator(
            task_id="submit_batches",
            execution_timeout=timeouts["submit_batches"],
            completion=project.completion,
            completion_after=project.completion_after,
            claimed=claim_files.output,
            document_api_conn_id=project.document_api_conn_id,
            api_url=project.api_url,
            sftp_conn_id=project.sftp_conn_id,
            uploaded_by="{{ params.uploaded_by }}",
            source="{{ params.source }}",
            profile_code="{{ params.profile_code }}",
            batch_size="{{ params.batch_size }}",
            max_in_flight=project.max_in_flight,
            checksum=project.checksum,
            max_size=project.max_size,
            retries=3,
            retry_delay=timedelta(minutes=2),
            retry_exponential_backoff=True,
        )
        project_status = ProjectStatusOperator(
            task_id="project_status",
            execution_timeout=timeouts["project_status"],
            sftp_conn_id=project.sftp_conn_id,
            base_path=PROJECT_FOLDER,
            project_root=project.base_path,
            source_dir=project.source_dir,
            in_progress_dir=project.in_progress_dir,
            date_format=project.date_format,
            timezone=project.timezone,
            trigger_rule=housekeeping_rule,
            retries=0,
        )
        check_alerts = CheckAlertsOperator(
            task_id="check_alerts",
            execution_timeout=timeouts["check_alerts"],
            trigger_rule=housekeeping_rule,  # also, and above all, when the resend failed
            check=AlertCheck(
                project_id=project_id,
                sftp_conn_id=project.sftp_conn_id,
                in_progress_root=posixpath.join(project.base_path, project.in_progress_dir),
                date_format=project.date_format,
                expectations=project_expectations(project),
                alert_targets=project.alert_targets or {},
            ),
            document_api_conn_id=project.document_api_conn_id,
            api_url=project.api_url,
            retries=0,  # the next run checks again
            max_active_tis_per_dag=1,  # one writer of the project's alert state, also when runs overlap
        )
        check_run = RunOutcomeOperator(
            task_id=OUTCOME_TASK,
            execution_timeout=timeouts[OUTCOME_TASK],
            trigger_rule=housekeeping_rule,
            retries=0,
        )
        # check_run runs when every task before it is done, whatever its state.
        if event_mode:  # housekeeping in the runs that claim nothing (sweep runs), off the path to the API
            wait_for_files >> resend_unsent >> [project_status, check_alerts]
            [project_status, check_alerts] >> check_run
        else:  # the status is logged beside the run's outcome, not before it: a task start less to wait for
            resend_unsent >> [wait_for_files, check_alerts]
            submit_batches >> [project_status, check_run]
            check_alerts >> check_run
    return dag


def record_failure(context: Context) -> None:
    """Every task's ``on_failure_callback``: leave its error, one line, as the XCom ``failure``."""
    error = context.get("exception")
    if error is not None:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        context["ti"].xcom_push(FAILURE_KEY, " ".join(text.split()))


class RunOutcomeOperator(BaseOperator):
    """Succeed when no task of the run failed, else fail the run naming the failed tasks (runs last)."""

    def execute(self, context: Context) -> None:
        """Read the run's task states; fail when one failed (the run would otherwise count as a success)."""
        if (problem := run_failures(context["ti"], self.dag_id, context["run_id"])) is not None:
            raise AirflowFailException(problem)
        self.log.info("No task of this run failed")


class InvalidEntryOperator(BaseOperator):
    """Fail with the reason an entry of the projects file is invalid (a placeholder DAG's only task)."""

    def __init__(self, *, message: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.message = message

    def execute(self, context: object) -> None:
        """Fail at once, naming the entry and its problems."""
        raise AirflowFailException(self.message)


#: Longest DAG display name: the DAG list shows an invalid entry's first problem in it.
DISPLAY_NAME_LIMIT = 200


def invalid_entry_dag(entry: InvalidEntry) -> DAG:
    """A paused, unscheduled placeholder DAG that shows in the UI why an entry has no DAG."""
    name = entry.project_id or f"entry {entry.index}"
    dag_id = placeholder_dag_id(entry.project_id, entry.index)
    if get_parsing_context().dag_id in (None, dag_id):  # the DAG processor, not other projects' tasks
        warnings.warn(f"{PROJECTS_FILE}: {entry.message}", UserWarning, stacklevel=1)
    with DAG(
        dag_id=dag_id,
        dag_display_name=f"INVALID project entry: {name}: {entry.problems[0]}"[:DISPLAY_NAME_LIMIT],
        description=f"{'; '.join(entry.problems)} ({entry.label})"[:200],
        schedule=None,
        start_date=START_DATE,
        is_paused_upon_creation=True,
        tags=["outamation", "invalid"],
        doc_md=f"### Invalid entry in `{PROJECTS_FILE}`\n\n{entry.label}: \n\n"
        + "\n".join(f"- {problem}" for problem in entry.problems)
        + "\n\nFix the entry; this placeholder then gives way to the project's DAG.",
    ) as dag:
        InvalidEntryOperator(task_id="invalid_entry", message=entry.message)
    return dag


def load_projects(path: Path) -> tuple[list[Project], list[InvalidEntry]]:
    """Read and check the projects file; one that is not a JSON list fails the whole file."""
    try:
        return parse_projects(json.loads(path.read_text()), ENV_DEFAULTS)
    except (OSError, ValueError) as exc:
        raise ValueError(f"projects file {path}: {exc}") from None


_projects, _invalid = load_projects(PROJECTS_FILE)
# A task process builds only the DAG of its task (Airflow sets the parsing context there); the DAG
# processor, `airflow dags list` and a plain import have no context and build every DAG.
_wanted = get_parsing_context().dag_id
for _project in _projects:
    if _wanted in (None, dag_id_of(_project.project_id)):
        globals()[dag_id_of(_project.project_id)] = build_dag(_project)
for _entry in _invalid:
    if _wanted in (None, placeholder_dag_id(_entry.project_id, _entry.index)):
        _dag = invalid_entry_dag(_entry)
        globals()[_dag.dag_id] = _dag

"""
Outamation SFTP ingestion: one DAG per project, scheduled and triggerable from the UI.

    wait_for_files (deferrable) -> claim_files -> submit_batches (every batch, 8 in flight)

A run claims at most ``max_files_per_run`` files (5,000 by default; the rest wait in the input folder
for the next run) and sends all their batches in one task, so a backlog costs a handful of Airflow
tasks per run, not one per batch. ``base_path`` given in the trigger form may only narrow the
project's folder (a subfolder), never point elsewhere.

Projects are listed in ``outamation_projects.json`` beside this file (or the file named by
``OUTAMATION_PROJECTS_FILE``): adding a project is adding an entry. Credentials live in the two
Airflow connections each entry names. The seed's environment variables give the defaults:
``SOURCE_FILES`` (input folder, ``input``), ``IN_Progress_Path`` (``in_progress``) and
``PROFILE_CODE``; ``DOC_AI_API_URL`` overrides the document API connection's URL.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, Param
from airflow.sdk.exceptions import AirflowFailException

from airflow_outamation.operators.document_api import DEFAULT_MAX_IN_FLIGHT, SubmitBatchesOperator
from airflow_outamation.operators.sftp import ClaimFilesOperator
from airflow_outamation.projects import confine_path
from airflow_outamation.sensors.sftp import ReadyFilesSensor

PROJECTS_FILE = Path(
    os.environ.get("OUTAMATION_PROJECTS_FILE", Path(__file__).with_name("outamation_projects.json"))
)
SOURCE_DIR = os.environ.get("SOURCE_FILES", "input")
IN_PROGRESS_DIR = os.environ.get("IN_Progress_Path", "in_progress")  # noqa: SIM112 (the seed's name)
#: How long a run waits for files before it ends as skipped (nothing to do this time).
WAIT_TIMEOUT = timedelta(minutes=int(os.environ.get("OUTAMATION_WAIT_MINUTES", "10")))
#: Most files one run claims; a bigger backlog is worked off by the following runs.
DEFAULT_MAX_FILES_PER_RUN = 5000
#: The run's project folder: the ``base_path`` param, confined to the entry's ``base_path``.
PROJECT_FOLDER = "{{ project_folder(params.base_path) }}"


def in_progress_asset(project_id: str) -> Asset:
    """The Asset updated whenever files of ``project_id`` are claimed into its in_progress folder."""
    return Asset(name=f"outamation_in_progress_{project_id}", uri=f"outamation://{project_id}/in_progress")


def folder_macro(root: str) -> Callable[[str], str]:
    """A template macro confining a run's ``base_path`` to ``root``; a path outside fails the task."""

    def project_folder(requested: str) -> str:
        try:
            return confine_path(requested, root)
        except ValueError as exc:  # fail at once: retrying the same run conf cannot help
            raise AirflowFailException(str(exc)) from None

    return project_folder


def build_dag(project: dict[str, Any]) -> DAG:
    """The ingestion DAG of one project entry."""
    project_id = project["project_id"]
    max_files = project.get("max_files_per_run", DEFAULT_MAX_FILES_PER_RUN)
    params = {
        "base_path": Param(
            project["base_path"],
            type="string",
            minLength=1,
            description=f"Project folder on the SFTP server, {project['base_path']} or a folder inside "
            f"it; files are read from its '{SOURCE_DIR}' folder and claimed into "
            f"'{IN_PROGRESS_DIR}/MMDDYYYY'.",
        ),
        "profile_code": Param(
            project.get("profile_code") or os.environ.get("PROFILE_CODE", ""),
            type="string",
            minLength=1,
            description="Document API processing profile sent with every batch.",
        ),
        "uploaded_by": Param(
            project.get("uploaded_by", "Airflow"),
            type="string",
            minLength=1,
            description="Who uploaded the files.",
        ),
        "source": Param(
            project.get("source", "SFTP"), type="string", minLength=1, description="Where they came from."
        ),
        "batch_size": Param(
            project.get("batch_size", 5),
            type="integer",
            minimum=1,
            maximum=100,
            description="Files per API call (1 to 100).",
        ),
        "max_files_per_run": Param(
            max_files,
            type="integer",
            minimum=1,
            maximum=100_000,
            description="Most files this run claims (1 to 100,000); the others wait for the next run.",
        ),
        "stability_delay": Param(
            1.2,
            type="number",
            minimum=0,
            maximum=600,
            description="Seconds a file's size must stay unchanged before it counts as fully uploaded.",
        ),
    }
    with DAG(
        dag_id=f"outamation_sftp_ingest_{project_id}",
        description=f"SFTP {project['base_path']}/{SOURCE_DIR} -> document API, project {project_id}",
        schedule=project.get("schedule"),
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=project.get("max_active_runs", 1),
        params=params,
        render_template_as_native_obj=True,
        default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
        tags=["outamation", "sftp", project_id],
        doc_md=__doc__,
        user_defined_macros={"project_folder": folder_macro(project["base_path"])},
    ) as dag:
        wait_for_files = ReadyFilesSensor(
            task_id="wait_for_files",
            sftp_conn_id=project["sftp_conn_id"],
            directory=f"{PROJECT_FOLDER}/{SOURCE_DIR}",
            stability_delay="{{ params.stability_delay }}",
            max_files="{{ params.max_files_per_run }}",
            poke_interval=project.get("poke_interval", 30),
            timeout=WAIT_TIMEOUT.total_seconds(),
            soft_fail=True,
        )
        claim_files = ClaimFilesOperator(
            task_id="claim_files",
            sftp_conn_id=project["sftp_conn_id"],
            base_path=PROJECT_FOLDER,
            files=wait_for_files.output,
            source_dir=SOURCE_DIR,
            in_progress_dir=IN_PROGRESS_DIR,
            max_files="{{ params.max_files_per_run }}",
            outlets=[in_progress_asset(project_id)],
        )
        SubmitBatchesOperator(
            task_id="submit_batches",
            claimed=claim_files.output,
            document_api_conn_id=project["document_api_conn_id"],
            sftp_conn_id=project["sftp_conn_id"],
            uploaded_by="{{ params.uploaded_by }}",
            source="{{ params.source }}",
            profile_code="{{ params.profile_code }}",
            batch_size="{{ params.batch_size }}",
            max_in_flight=project.get("max_in_flight", DEFAULT_MAX_IN_FLIGHT),
            retries=3,
            retry_delay=timedelta(minutes=2),
            retry_exponential_backoff=True,
        )
    return dag


for _project in json.loads(PROJECTS_FILE.read_text()):
    globals()[f"outamation_sftp_ingest_{_project['project_id']}"] = build_dag(_project)

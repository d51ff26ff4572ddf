"""
Outamation SFTP ingestion: one DAG per project, scheduled and triggerable from the UI.

    wait_for_files (deferrable) -> claim_files -> make_batches -> submit_batch (mapped, one per batch)

Projects are listed in ``outamation_projects.json`` beside this file (or the file named by
``OUTAMATION_PROJECTS_FILE``): adding a project is adding an entry. Credentials live in the two
Airflow connections each entry names. The seed's environment variables give the defaults:
``SOURCE_FILES`` (input folder, ``input``), ``IN_Progress_Path`` (``in_progress``) and
``PROFILE_CODE``; ``DOC_AI_API_URL`` overrides the document API connection's URL.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, Param

from airflow_outamation.operators.batch import BatchFilesOperator
from airflow_outamation.operators.document_api import SubmitBatchOperator
from airflow_outamation.operators.sftp import ClaimFilesOperator
from airflow_outamation.sensors.sftp import ReadyFilesSensor

PROJECTS_FILE = Path(
    os.environ.get("OUTAMATION_PROJECTS_FILE", Path(__file__).with_name("outamation_projects.json"))
)
SOURCE_DIR = os.environ.get("SOURCE_FILES", "input")
IN_PROGRESS_DIR = os.environ.get("IN_Progress_Path", "in_progress")  # noqa: SIM112 (the seed's name)
#: How long a run waits for files before it ends as skipped (nothing to do this time).
WAIT_TIMEOUT = timedelta(minutes=int(os.environ.get("OUTAMATION_WAIT_MINUTES", "10")))


def in_progress_asset(project_id: str) -> Asset:
    """The Asset updated whenever files of ``project_id`` are claimed into its in_progress folder."""
    return Asset(name=f"outamation_in_progress_{project_id}", uri=f"outamation://{project_id}/in_progress")


def build_dag(project: dict[str, Any]) -> DAG:
    """The ingestion DAG of one project entry."""
    project_id = project["project_id"]
    params = {
        "base_path": Param(
            project["base_path"],
            type="string",
            minLength=1,
            description=f"Project folder on the SFTP server; files are read from its '{SOURCE_DIR}' "
            f"folder and claimed into '{IN_PROGRESS_DIR}/MMDDYYYY'.",
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
        "batch_size": Param(5, type="integer", minimum=1, maximum=100, description="Files per API call."),
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
    ) as dag:
        wait_for_files = ReadyFilesSensor(
            task_id="wait_for_files",
            sftp_conn_id=project["sftp_conn_id"],
            directory=f"{{{{ params.base_path }}}}/{SOURCE_DIR}",
            stability_delay="{{ params.stability_delay }}",
            poke_interval=project.get("poke_interval", 30),
            timeout=WAIT_TIMEOUT.total_seconds(),
            soft_fail=True,
        )
        claim_files = ClaimFilesOperator(
            task_id="claim_files",
            sftp_conn_id=project["sftp_conn_id"],
            base_path="{{ params.base_path }}",
            files=wait_for_files.output,
            source_dir=SOURCE_DIR,
            in_progress_dir=IN_PROGRESS_DIR,
            outlets=[in_progress_asset(project_id)],
        )
        make_batches = BatchFilesOperator(
            task_id="make_batches", claimed=claim_files.output, batch_size="{{ params.batch_size }}"
        )
        SubmitBatchOperator.partial(
            task_id="submit_batch",
            document_api_conn_id=project["document_api_conn_id"],
            uploaded_by="{{ params.uploaded_by }}",
            source="{{ params.source }}",
            profile_code="{{ params.profile_code }}",
            sftp_conn_id=project["sftp_conn_id"],
            retries=3,
            retry_delay=timedelta(minutes=2),
            retry_exponential_backoff=True,
        ).expand(batch=make_batches.output)
    return dag


for _project in json.loads(PROJECTS_FILE.read_text()):
    globals()[f"outamation_sftp_ingest_{_project['project_id']}"] = build_dag(_project)

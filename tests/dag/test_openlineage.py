"""
OpenLineage events of a real DAG run (``dag.test()``): the claim and send steps name the SFTP folders
and the document API, through the OpenLineage provider's own listener and file transport.

The run is a subprocess: the OpenLineage provider reads its transport once per process, and this
test's process may have loaded Airflow's plugins (OpenLineage's listener among them) before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.server_base import SftpTestServer

pytest.importorskip("airflow.providers.openlineage")

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "outamation_test_lineage"
QUERY_SECRET = "token-in-the-query-5f0e"
DAG_SOURCE = """
from datetime import datetime, timezone

from airflow.sdk import DAG

from airflow_outamation.operators.document_api import SubmitBatchesOperator
from airflow_outamation.operators.sftp import ClaimFilesOperator

with DAG("{dag_id}", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)) as dag:
    claim = ClaimFilesOperator(
        task_id="claim_files", sftp_conn_id="{sftp_conn_id}", base_path="{base}", stability_delay=0.2
    )
    SubmitBatchesOperator(
        task_id="submit_batches",
        claimed=claim.output,
        uploaded_by="lineage-test",
        source="SFTP",
        sftp_conn_id="{sftp_conn_id}",
        document_api_conn_id="{api_conn_id}",
        api_url="{api_url}",
    )
"""
RUN = """
import sys
from datetime import datetime, timezone
from pathlib import Path

from outamation_testbed.dag_runs import import_dag_file

dag_run = import_dag_file(Path(sys.argv[1])).dag.test(logical_date=datetime(2026, 2, 3, tzinfo=timezone.utc))
print("STATE", dag_run.state)
"""


def _complete_events(log: Path) -> dict[str, dict[str, Any]]:
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return {
        event["job"]["name"].rpartition(".")[2]: event
        for event in events
        if event.get("eventType") == "COMPLETE" and event["job"]["name"].startswith(f"{DAG_ID}.")
    }


@pytest.mark.slow
def test_a_run_emits_the_sftp_folders_and_the_api_without_secrets(
    airflow_db: str,
    asyncssh_server: SftpTestServer,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    base = asyncssh_server.remote_path(f"lineage-{tmp_path.name}")
    for name in ("a.pdf", "b.pdf", "c.pdf"):
        asyncssh_server.write(f"{base}/input/{name}", b"%PDF-1.7 " + name.encode())
    sftp_conn_id = "outamation_lineage_sftp"
    monkeypatch.setenv(f"AIRFLOW_CONN_{sftp_conn_id.upper()}", asyncssh_server.connection_json())
    api_url = document_api_receiver.url.replace("://", "://user:url-password@") + f"?key={QUERY_SECRET}"
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    dag_file = bundle / "dag.py"
    dag_file.write_text(
        DAG_SOURCE.format(
            dag_id=DAG_ID,
            base=base,
            sftp_conn_id=sftp_conn_id,
            api_conn_id=document_api_conn_id,
            api_url=api_url,
        )
    )
    log = tmp_path / "openlineage.jsonl"
    bundles = [{"name": "lineage", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(bundle)}}]  # fmt: skip
    env = {
        **os.environ,
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(log), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "outamation-test",
    }

    done = subprocess.run(
        [sys.executable, "-c", RUN, str(dag_file)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert "STATE success" in done.stdout, done.stdout[-3000:] + done.stderr[-5000:]
    assert len(document_api_receiver.accepted_ids) == 1
    events = _complete_events(log)
    sftp = f"sftp://{asyncssh_server.host}:{asyncssh_server.port}"
    folder = f"{base}/in_progress/02032026"
    claim, submit = events["claim_files"], events["submit_batches"]
    assert [
        (d["namespace"], d["name"], d["inputFacets"]["inputStatistics"]["fileCount"]) for d in claim["inputs"]
    ] == [(sftp, f"{base}/input", 3)]
    assert [
        (d["namespace"], d["name"], d["outputFacets"]["outputStatistics"]["fileCount"])
        for d in claim["outputs"]
    ] == [(sftp, folder, 3)]
    assert [
        (d["namespace"], d["name"], d["inputFacets"]["inputStatistics"]["fileCount"])
        for d in submit["inputs"]
    ] == [(sftp, folder, 3)]
    api = f"http://127.0.0.1:{document_api_receiver.port}"
    assert [
        (d["namespace"], d["name"], d["outputFacets"]["outputStatistics"]["fileCount"])
        for d in submit["outputs"]
    ] == [(api, document_api_receiver.path, 3)]
    text = log.read_text()
    secrets = [
        document_api_receiver.secret,
        QUERY_SECRET,
        "url-password",
        Path(asyncssh_server.client_key_path).read_text().splitlines()[1],
    ]
    assert [secret for secret in secrets if secret in text] == []

"""
``python -m outamation_testbed.demo``: the whole pipeline, event-driven, on local servers and real Airflow.

Starts the in-process asyncssh SFTP server with sample PDFs in ``input/`` (one of them still being
written), the signature-verifying document API receiver and, on a throw-away ``AIRFLOW_HOME``,
Airflow's API server, scheduler, DAG processor and triggerer (LocalExecutor, SQLite:
:class:`~outamation_testbed.airflow_processes.AirflowProcesses`). The demo project is in event
mode: the watcher of its input folder (``ReadyFilesEventTrigger``, in the triggerer) starts every
run; the demo triggers none. The API refuses one batch (HTTP 400): its files go to
``rejected/<date>/`` and run 1 fails naming that folder; the demo moves them back to ``input/``, as a
user would, and the watcher starts run 2, which sends them. Then the file still being written stops
growing and run 3 sends it. Prints each run as it starts and ends (from the REST API), where every
file ended up, and exits non-zero if any step did not happen. Airflow's own logs are files in the
throw-away home, kept (and named) when something did not happen.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests

from airflow_outamation.testing.asyncssh_server import AsyncsshSftpServer
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver, ReceivedRequest, Reply
from outamation_testbed.airflow_processes import (
    EXAMPLE_DAG,
    FINISHED_STATES,
    AirflowProcesses,
    example_dag_home,
)

PROJECT_ID = "demo"
DAG_ID = f"outamation_sftp_ingest_{PROJECT_ID}"
BASE_PATH = "/upload/demo"
SAMPLE_FILES = 12
STILL_WRITING = "scan_still_uploading.pdf"
#: The API refuses the batch holding this file in the first run.
REFUSED = "invoice_006.pdf"
#: How the runs the watcher starts are typed in Airflow (``DagRunType.ASSET_TRIGGERED``).
BY_THE_WATCHER = "asset_triggered"
#: Seconds a run may take to start by itself and finish before the demo counts the step as missed.
RUN_TIMEOUT = 300


@dataclass
class RunReport:
    """What one run of the demo DAG was and did, as the REST API tells it."""

    number: int
    run_id: str
    run_type: str
    state: str = ""
    claimed: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class Outcome:
    """What happened: the runs, the API's requests, where the files are, and when the demo acted."""

    runs: list[RunReport] = field(default_factory=list)
    requests: list[ReceivedRequest] = field(default_factory=list)
    places: dict[str, list[str]] = field(default_factory=dict)
    moved_back: list[str] = field(default_factory=list)
    #: ``time.monotonic()`` when the refused files were back in ``input/``, and when the upload ended
    moved_back_at: float | None = None
    finished_writing_at: float | None = None


def _sample_pdf(number: int) -> bytes:
    """A small PDF-looking document, different for every ``number``."""
    text = f"Outamation demo document {number}"
    return (
        b"%PDF-1.7\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n"
        b"2 0 obj <</Type /Pages /Kids [] /Count 0>> endobj\n"
        + f"% {text}\n".encode()
        + os.urandom(2048)
        + b"\n%%EOF\n"
    )


def _say(message: str) -> None:
    """Print a line of the demo's progress."""
    print(f"[demo] {message}", flush=True)


def _clock(timestamp: str) -> str:
    """``HH:MM:SS`` of an API timestamp (UTC)."""
    return datetime.fromisoformat(timestamp).strftime("%H:%M:%S")


def _now() -> str:
    """The time of day (UTC), as the run lines give it."""
    return datetime.now(timezone.utc).strftime("%H:%M:%S")


def _seconds(start: str | None, end: str | None) -> float:
    """Seconds between two API timestamps; 0 when one is missing."""
    if not (start and end):
        return 0.0
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


class RunFollower:
    """
    Follow the runs of the demo DAG through the REST API, printing each as it starts and ends.

    :param airflow: the running Airflow
    """

    def __init__(self, airflow: AirflowProcesses) -> None:
        self.airflow = airflow
        self.runs: dict[str, RunReport] = {}

    def wait_for_runs(self, count: int, timeout: float = RUN_TIMEOUT) -> bool:
        """Wait until ``count`` runs have finished; ``False`` when they did not within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            for run in self.airflow.api("GET", f"/dags/{DAG_ID}/dagRuns?order_by=run_after")["dag_runs"]:
                self._follow(run)
            if sum(report.state in FINISHED_STATES for report in self.runs.values()) >= count:
                return True
            if time.monotonic() >= deadline:
                _say(f"{count} run(s) did not start by themselves and finish within {timeout:g} s")
                return False
            time.sleep(1)

    def _follow(self, run: dict[str, Any]) -> None:
        """Print a run when it started and when it finished (once each)."""
        report = self.runs.get(run["dag_run_id"])
        if report is None:
            if not run["start_date"]:  # Airflow 3.3 answers 500 for the asset events of a queued run
                return
            report = RunReport(len(self.runs) + 1, run["dag_run_id"], run["run_type"])
            self.runs[report.run_id] = report
            how = "by itself" if report.run_type == BY_THE_WATCHER else "NOT by itself"
            _say(
                f"run {report.number} started {how} at {_clock(run['start_date'])} "
                f"({report.run_type}): the watcher announced {self._announced(report.run_id)}"
            )
        if run["state"] in FINISHED_STATES and not report.state:
            report.state = run["state"]
            took = _seconds(run["start_date"], run["end_date"])
            ended = "succeeded" if report.state == "success" else report.state
            _say(f"run {report.number} {ended} after {took:.0f} s: {self._what_it_did(report)}")

    def _announced(self, run_id: str) -> str:
        """What the asset events that started a run announced, e.g. ``12 ready file(s)``."""
        events = self.airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/upstreamAssetEvents")
        payloads = [(event.get("extra") or {}).get("payload") or {} for event in events["asset_events"]]
        ready = sum(payload.get("file_count", 0) for payload in payloads if payload.get("status") == "ready")
        return f"{ready} ready file(s)" if payloads else "nothing (no asset event)"

    def _what_it_did(self, report: RunReport) -> str:
        """Files claimed, batches sent, failed tasks and the error naming where the files went."""
        claim = self._xcom(report.run_id, "claim_files") or {}  # its summary: the demo claims < 100 files
        report.claimed = sorted(str(name) for name in claim.get("files", []))
        sent = self._xcom(report.run_id, "submit_batches")
        done = [f"claimed {claim.get('file_count', 0)} file(s)"]
        if sent:
            done.append(f"sent {sent['sent']} of {sent['batches']} batch(es)")
        states = self.airflow.task_states(DAG_ID, report.run_id)
        failed = [task for task, task_states in states.items() if "failed" in task_states]
        if failed:
            report.error = self._error(report.run_id, failed[0])
            done.append(f"failed: {', '.join(failed)}\n         {failed[0]}: {report.error}")
        return "; ".join(done)

    def _xcom(self, run_id: str, task_id: str) -> Any:
        """A task's ``return_value`` in a run; ``None`` when it returned nothing."""
        path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        try:
            value = self.airflow.api("GET", path)["value"]
        except requests.HTTPError:
            return None
        return json.loads(value) if isinstance(value, str) else value

    def _error(self, run_id: str, task_id: str) -> str:
        """The error a failed task ended with, from its log as the REST API serves it."""
        instance = self.airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}")
        path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{instance['try_number']}"
        content = self.airflow.api("GET", f"{path}?full_content=true", headers={"Accept": "application/json"})
        for line in reversed(content["content"]):
            for detail in line.get("error_detail") or []:
                return f"{detail.get('exc_type')}: {detail.get('exc_value')}"
        return "(no error in its log)"


def run_demo() -> tuple[int, Outcome]:
    """Run the demo; return the exit code and what happened."""
    outcome = Outcome()
    if not EXAMPLE_DAG.is_file():
        _say(f"the example DAG is not at {EXAMPLE_DAG}: run the demo from a clone of the repository")
        return 2, outcome
    home = Path(tempfile.mkdtemp(prefix="outamation-demo-"))
    code = 1
    try:
        with ExitStack() as stack:
            sftp = stack.enter_context(AsyncsshSftpServer())
            api = stack.enter_context(DocumentApiReceiver())
            try:
                _play(home, sftp, api, stack, outcome)
            finally:
                outcome.requests = api.requests
                outcome.places = _where(sftp)
        code = _summarise(outcome)
    except KeyboardInterrupt:
        _say("interrupted; every process it started is stopped")
        code = 130
    except (RuntimeError, TimeoutError, requests.RequestException) as exc:
        _say(f"stopped: {exc}")
    if code == 0:
        shutil.rmtree(home, ignore_errors=True)
    else:
        _say(f"Airflow's logs are kept: {home}/<component>.log, task logs under {home}/logs/")
    return code, outcome


def _play(
    home: Path, sftp: AsyncsshSftpServer, api: DocumentApiReceiver, stack: ExitStack, outcome: Outcome
) -> None:
    """Lay out the files, start Airflow (stopped by ``stack``) and follow the three runs."""
    _say(f"SFTP server (asyncssh) on 127.0.0.1:{sftp.port}, serving {sftp.root}")
    _say(f"document API receiver on {api.url}, verifying Standard Webhooks signatures")
    for number in range(1, SAMPLE_FILES + 1):
        sftp.write(f"{BASE_PATH}/input/invoice_{number:03}.pdf", _sample_pdf(number))
    upload = stack.enter_context(ExitStack())
    upload.enter_context(sftp.growing_file(f"{BASE_PATH}/input/{STILL_WRITING}", interval=0.1))
    _say(f"{SAMPLE_FILES} PDFs in {BASE_PATH}/input, and {STILL_WRITING}, still being written there")
    api.script_for_file(REFUSED, Reply(400, json.dumps({"error": "page 3 is unreadable"})))
    _say(f"the API will refuse the batch holding {REFUSED} (HTTP 400)")

    airflow = _airflow(home, sftp, api)
    stack.callback(airflow.stop)
    _say(f"starting Airflow in {home}: API server, scheduler, DAG processor, triggerer (LocalExecutor) ...")
    started = time.monotonic()
    airflow.start()
    airflow.wait_for_dag(DAG_ID)
    _say(f"Airflow is up on {airflow.base_url} after {time.monotonic() - started:.0f} s")
    _say(f"{DAG_ID} is scheduled on its input folder's Asset: its watcher starts the runs, the demo none")
    follower = RunFollower(airflow)
    try:
        if follower.wait_for_runs(1):
            _move_back(sftp, outcome)
            if follower.wait_for_runs(2):
                _finish_upload(upload, outcome)
                follower.wait_for_runs(3)
    finally:
        outcome.runs = list(follower.runs.values())
        _say("stopping Airflow ...")


def _airflow(home: Path, sftp: AsyncsshSftpServer, api: DocumentApiReceiver) -> AirflowProcesses:
    """Airflow on ``home`` with the demo's event-mode project and both connections."""
    project = {
        "project_id": PROJECT_ID,
        "sftp_conn_id": "outamation_sftp_demo",
        "document_api_conn_id": "outamation_document_api_demo",
        "base_path": BASE_PATH,
        "profile_code": "demo_profile",
        "uploaded_by": "Admin",
        "source": "Demo SFTP",
        "schedule": "event",
        "poke_interval": 1,
        "stability_delay": 1,
        "completion": "move",
        "sweep_interval": None,  # the demo's runs are the watcher's (a sweep would add one at unpausing)
    }
    dags, projects_env = example_dag_home(home, [project])
    env = {
        **projects_env,
        "AIRFLOW_CONN_OUTAMATION_SFTP_DEMO": sftp.connection_json(),
        "AIRFLOW_CONN_OUTAMATION_DOCUMENT_API_DEMO": api.connection_json(),
        # Watchers of a paused DAG do not run: unpaused from the first parse, it starts at once.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    }
    return AirflowProcesses(home, dags, env)


def _move_back(sftp: AsyncsshSftpServer, outcome: Outcome) -> None:
    """Move the documents of ``rejected/<date>/`` back to ``input/``, as the README tells a user to."""
    rejected = sftp.local_path(f"{BASE_PATH}/rejected")
    for document in sorted(rejected.glob("*/*.pdf")) if rejected.is_dir() else []:
        document.rename(sftp.local_path(f"{BASE_PATH}/input/{document.name}"))
        outcome.moved_back.append(document.name)
    outcome.moved_back_at = time.monotonic()
    _say(
        f"at {_now()} moved the {len(outcome.moved_back)} refused files from rejected/<date>/ back to input/"
    )


def _finish_upload(upload: ExitStack, outcome: Outcome) -> None:
    """End the upload of the file still being written."""
    upload.close()
    outcome.finished_writing_at = time.monotonic()
    _say(f"at {_now()} {STILL_WRITING} finished uploading (it stops growing)")


def _where(sftp: AsyncsshSftpServer) -> dict[str, list[str]]:
    """Every PDF under the project's folder, by the folder it is in (``.claims`` records left out)."""
    base = sftp.local_path(BASE_PATH)
    places: dict[str, list[str]] = {}
    for document in sorted(base.rglob("*.pdf")):
        folder = str(document.parent.relative_to(base))
        if ".claims" not in folder:
            places.setdefault(folder, []).append(document.name)
    return places


def _names(request: ReceivedRequest) -> list[str]:
    """The file names of a batch the receiver got."""
    return [str(f["filename"]) for f in request.json()["files"]]


def _checks(outcome: Outcome) -> dict[str, bool]:
    """Each step of the demo's story and whether it happened."""
    runs = outcome.runs + [RunReport(0, "", "")] * (3 - len(outcome.runs))
    valid = [r for r in outcome.requests if r.valid]
    accepted = [r for r in valid if r.reply.status < 300]
    refused = [r for r in valid if r.reply.status == 400]
    sent = sorted(name for r in accepted for name in _names(r))
    expected = sorted([f"invoice_{number:03}.pdf" for number in range(1, SAMPLE_FILES + 1)] + [STILL_WRITING])
    processed = sorted(
        n for folder, names in outcome.places.items() if folder.startswith("processed") for n in names
    )
    last_sent = [r.received_at for r in accepted if STILL_WRITING in _names(r)]
    return {
        f"{len(outcome.runs)} runs, each started by itself when files were ready (none triggered)": (
            len(outcome.runs) == 3 and all(run.run_type == BY_THE_WATCHER for run in outcome.runs)
        ),
        "run 1 failed visibly, naming the rejected folder": (
            runs[0].state == "failed" and f"{BASE_PATH}/rejected/" in runs[0].error
        ),
        f"the API refused 1 batch; its {len(outcome.moved_back)} files went to rejected/<date>/": (
            len(refused) == 1
            and REFUSED in _names(refused[0])
            and sorted(_names(refused[0])) == outcome.moved_back
        ),
        "run 2 sent the files moved back to input/ and succeeded": (
            runs[1].state == "success" and bool(outcome.moved_back) and runs[1].claimed == outcome.moved_back
        ),
        f"{STILL_WRITING} waited until its upload ended; run 3 sent it": (
            runs[2].state == "success"
            and runs[2].claimed == [STILL_WRITING]
            and outcome.finished_writing_at is not None
            and all(at > outcome.finished_writing_at for at in last_sent)
        ),
        f"{len(valid)} of {len(outcome.requests)} signatures verified by the receiver": (
            len(valid) == len(outcome.requests) and bool(valid)
        ),
        f"every one of the {len(expected)} PDFs was accepted exactly once": sent == expected,
        f"accepted files moved to processed/<date>/ (completion: move): {len(processed)}": processed
        == expected,
        "nothing left in input/": not outcome.places.get("input"),
    }


def _summarise(outcome: Outcome) -> int:
    """Print what happened and where every file is; return 0 only if every step happened."""
    print()
    _say("summary")
    results = _checks(outcome)
    for text, ok in results.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {text}")
    for request in (r for r in outcome.requests if r.valid):
        answer = "accepted" if request.reply.status < 300 else f"refused (HTTP {request.reply.status})"
        print(f"       batch {request.message_id} {answer}: {_names(request)}")
    _say(f"where every file is now, under {BASE_PATH}:")
    for folder, names in outcome.places.items():
        print(f"       {folder}/: {', '.join(names)}")
    if all(results.values()):
        _say("done")
        return 0
    _say("something did not happen (FAIL above)")
    return 1


def main() -> int:
    """Run the demo; return the process exit code."""
    return run_demo()[0]


if __name__ == "__main__":
    sys.exit(main())

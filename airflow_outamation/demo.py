"""
``python -m airflow_outamation.demo``: the whole pipeline on local servers, in about a minute.

Starts the in-process asyncssh SFTP server with sample PDFs in ``input/`` (one of them still being
written), the signature-verifying document API receiver, a throw-away ``AIRFLOW_HOME`` with both
Airflow connections, and runs the example DAG with ``airflow dags test`` (the sensor finds the waiting
files at its first look; it would defer into the in-process triggerer otherwise), which sends every
batch from one task. The API refuses one batch (HTTP 400): its files go to ``rejected/<date>/`` and
the run fails naming it; the demo then moves them back to ``input/``, as a user would, and a second
run sends them. Prints where every file ended up and exits non-zero if any step did not happen.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from airflow_outamation.testing.asyncssh_server import AsyncsshSftpServer
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver, Reply

DAGS_FOLDER = Path(__file__).resolve().parent.parent / "dags"
PROJECT_ID = "demo"
BASE_PATH = "/upload/demo"
SAMPLE_FILES = 12
STILL_WRITING = "scan_still_uploading.pdf"
#: The API refuses the batch holding this file in the first run.
REFUSED = "invoice_006.pdf"
#: Log messages of Airflow's output worth showing while the DAG runs.
PROGRESS_MARKERS = ("ready file", "Claimed", "batch(es)", "accepted, HTTP", "DEFERRED", "rror")
#: Airflow's console log line: timestamp, [level], message, [logger], key=value pairs.
LOG_LINE = re.compile(r"^\S+ \[(?P<level>\w+)\s*\] (?P<message>.*?) \[[\w.]+\]")


def _sample_pdf(number: int) -> bytes:
    text = f"Outamation demo document {number}"
    return (
        b"%PDF-1.7\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n"
        b"2 0 obj <</Type /Pages /Kids [] /Count 0>> endobj\n"
        + f"% {text}\n".encode()
        + os.urandom(2048)
        + b"\n%%EOF\n"
    )


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def _run_airflow(args: list[str], env: dict[str, str], log: Path, show_progress: bool) -> int:
    airflow = str(Path(sys.executable).parent / "airflow")
    with log.open("a") as log_file:
        process = subprocess.Popen(
            [airflow, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None
        for line in process.stdout:
            log_file.write(line)
            parsed = LOG_LINE.match(line)
            if show_progress and parsed and any(marker in parsed["message"] for marker in PROGRESS_MARKERS):
                _say(f"  airflow {parsed['level']}: {parsed['message']}")
        return process.wait()


def main() -> int:
    """Run the demo; return the process exit code."""
    if not (DAGS_FOLDER / "outamation_sftp_ingest.py").is_file():
        _say(f"the example DAG is not at {DAGS_FOLDER}: run the demo from a clone of the repository")
        return 2
    with (
        tempfile.TemporaryDirectory(prefix="outamation-demo-") as workdir,
        AsyncsshSftpServer() as sftp,
        DocumentApiReceiver() as api,
    ):
        home = Path(workdir)
        log = home / "airflow.log"
        _say(f"SFTP server (asyncssh) on 127.0.0.1:{sftp.port}, serving {sftp.root}")
        _say(f"document API receiver on {api.url}, verifying Standard Webhooks signatures")
        for number in range(1, SAMPLE_FILES + 1):
            sftp.write(f"{BASE_PATH}/input/invoice_{number:03}.pdf", _sample_pdf(number))
        _say(f"{SAMPLE_FILES} PDFs in {BASE_PATH}/input")

        projects = home / "projects.json"
        project = {
            "project_id": PROJECT_ID,
            "sftp_conn_id": "outamation_sftp_demo",
            "document_api_conn_id": "outamation_document_api_demo",
            "base_path": BASE_PATH,
            "profile_code": "demo_profile",
            "uploaded_by": "Admin",
            "source": "Demo SFTP",
            "poke_interval": 1,
            "completion": "move",
        }
        projects.write_text(json.dumps([project]))
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "OUTAMATION_PROJECTS_FILE": str(projects),
            "AIRFLOW_CONN_OUTAMATION_SFTP_DEMO": sftp.connection_json(),
            "AIRFLOW_CONN_OUTAMATION_DOCUMENT_API_DEMO": api.connection_json(),
        }
        env.pop("DOC_AI_API_URL", None)
        _say(f"throw-away AIRFLOW_HOME {home}: migrating its SQLite database ...")
        if _run_airflow(["db", "migrate"], env, log, show_progress=False) != 0:
            _say(f"airflow db migrate failed; see the log above: {log.read_text()[-2000:]}")
            return 1

        dag_id = f"outamation_sftp_ingest_{PROJECT_ID}"
        test_run = ["dags", "test", dag_id, "--conf", json.dumps({"stability_delay": 1.0})]
        api.script_for_file(REFUSED, Reply(400, json.dumps({"error": "page 3 is unreadable"})))
        _say(f"run 1: airflow dags test {dag_id}; the API will refuse the batch holding {REFUSED} ...")
        started = time.monotonic()
        with sftp.growing_file(f"{BASE_PATH}/input/{STILL_WRITING}", interval=0.1):
            _say(f"{STILL_WRITING} is still being written into {BASE_PATH}/input while the DAG runs")
            first = _run_airflow(test_run, env, log, True)
            refused = _move_back_from_rejected(sftp)
            _say(f"run 2: the refused files are back in input/ ({len(refused)}); airflow dags test again ...")
            second = _run_airflow(test_run, env, log, True)
        return _summarise(sftp, api, first, second, refused, time.monotonic() - started, log)


def _move_back_from_rejected(sftp: AsyncsshSftpServer) -> list[str]:
    """Move the documents of ``rejected/<date>/`` back to ``input/``, as the README tells a user to."""
    rejected = sftp.local_path(f"{BASE_PATH}/rejected")
    moved = []
    for document in sorted(rejected.glob("*/*.pdf")) if rejected.is_dir() else []:
        document.rename(sftp.local_path(f"{BASE_PATH}/input/{document.name}"))
        moved.append(document.name)
    return moved


def _where(sftp: AsyncsshSftpServer) -> dict[str, list[str]]:
    """Every PDF under the project's folder, by the folder it is in (``.claims`` records left out)."""
    base = sftp.local_path(BASE_PATH)
    places: dict[str, list[str]] = {}
    for document in sorted(base.rglob("*.pdf")):
        folder = str(document.parent.relative_to(base))
        if ".claims" not in folder:
            places.setdefault(folder, []).append(document.name)
    return places


def _summarise(
    sftp: AsyncsshSftpServer,
    api: DocumentApiReceiver,
    first: int,
    second: int,
    refused: list[str],
    seconds: float,
    log: Path,
) -> int:
    """Print what happened and where every file is; return 0 only if every step happened."""
    places = _where(sftp)
    processed = sorted(
        name for folder, names in places.items() if folder.startswith("processed") for name in names
    )
    waiting = ", ".join(places.get("input", [])) or "nothing"
    requests = api.requests
    valid = [r for r in requests if r.valid]
    accepted = [r for r in valid if r.reply.status < 300]
    sent = sorted(f["filename"] for r in accepted for f in r.json()["files"])
    expected = [f"invoice_{number:03}.pdf" for number in range(1, SAMPLE_FILES + 1)]
    checks = {
        f"run 1 failed visibly, naming the rejected folder ({seconds:.0f} s for both runs)": first != 0
        and "rejected" in log.read_text(),
        f"the API refused 1 batch; its {len(refused)} files went to rejected/<date>/": (
            REFUSED in refused and len([r for r in valid if r.reply.status == 400]) == 1
        ),
        "run 2 succeeded with the files moved back to input/": second == 0,
        f"{len(valid)} of {len(requests)} signatures verified by the receiver": (
            len(valid) == len(requests) and bool(requests)
        ),
        f"every one of the {SAMPLE_FILES} PDFs was accepted exactly once": sent == expected,
        f"accepted files moved to processed/<date>/ (completion: move): {len(processed)}": (
            processed == expected
        ),
        f"left in input/ for a later run: {waiting} (still being written)": waiting == STILL_WRITING,
    }
    print()
    _say("summary")
    for text, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {text}")
    for request in valid:
        answer = "accepted" if request.reply.status < 300 else f"refused (HTTP {request.reply.status})"
        names = [f["filename"] for f in request.json()["files"]]
        print(f"       batch {request.message_id} {answer}: {names}")
    _say(f"where every file is now, under {BASE_PATH}:")
    for folder, names in places.items():
        print(f"       {folder}/: {', '.join(names)}")
    if all(checks.values()):
        _say("done")
        return 0
    _say(f"something did not happen; the end of Airflow's output:\n{log.read_text()[-4000:]}")
    return 1


if __name__ == "__main__":
    sys.exit(main())

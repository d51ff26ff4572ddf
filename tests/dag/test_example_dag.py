"""The example DAG: it imports cleanly, its params validate, and a full run works on the real servers."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.ingestion_status import run_outcome
from airflow_outamation.operators.sftp import claimed_file_dicts, manifest_id_for
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.server_base import SftpTestServer
from outamation_testbed.dag_runs import import_dag_file, xcom_values

if TYPE_CHECKING:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "dags" / "outamation_sftp_ingest.py"


def _load_example_dag(
    projects: list[dict[str, object]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ModuleType:
    projects_file = tmp_path / "projects.json"
    projects_file.write_text(json.dumps(projects))
    monkeypatch.setenv("OUTAMATION_PROJECTS_FILE", str(projects_file))
    return import_dag_file(DAG_FILE)


def test_dags_folder_has_no_import_errors() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags["outamation_sftp_ingest_example"]
    assert dag.task_ids == [
        "resend_unsent",
        "wait_for_files",
        "claim_files",
        "submit_batches",
        "project_status",
        "check_alerts",
        "check_run",
    ]
    assert dag.get_task("resend_unsent").downstream_task_ids == {"wait_for_files", "check_alerts"}
    assert dag.get_task("check_run").upstream_task_ids == {"submit_batches", "check_alerts"}
    assert dag.get_task("project_status").upstream_task_ids == {"submit_batches"}  # beside check_run
    assert dag.get_task("check_run").trigger_rule == "all_done"  # success, not skipped, when nothing failed
    assert dag.max_active_runs == 1
    assert dag.catchup is False


def test_check_run_names_the_failed_tasks_and_their_errors() -> None:
    assert run_outcome({"claim_files": "success", "wait_for_files": "skipped"}, {}) is None
    states = {"submit_batches": "failed", "project_status": "failed", "check_run": "running"}
    errors = {"submit_batches": "DocumentApiRejectedError: HTTP 422 ... move the files back to /p/input"}
    assert run_outcome(states, errors) == (
        "submit_batches failed: DocumentApiRejectedError: HTTP 422 ... move the files back to /p/input; "
        "project_status failed: see its log"
    )


def test_one_dag_per_project_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    projects = [
        {
            "project_id": p,
            "sftp_conn_id": f"sftp_{p}",
            "document_api_conn_id": "api",
            "base_path": f"/{p}",
            "profile_code": "intake",
        }
        for p in ("alpha", "beta")
    ]
    module = _load_example_dag(projects, tmp_path, monkeypatch)
    assert module.outamation_sftp_ingest_alpha.params["base_path"] == "/alpha"
    assert module.outamation_sftp_ingest_beta.params["base_path"] == "/beta"


def test_params_reject_bad_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    project = {
        "project_id": "p",
        "sftp_conn_id": "s",
        "document_api_conn_id": "a",
        "base_path": "/p",
        "profile_code": "intake",
    }
    dag = _load_example_dag([project], tmp_path, monkeypatch).outamation_sftp_ingest_p
    for name, bad in (
        ("batch_size", 0),
        ("batch_size", "five"),
        ("base_path", ""),
        ("stability_delay", -1),
        ("max_files_per_run", 0),
        ("base_path", "/etc"),
        ("base_path", "/pq"),
        ("base_path", "/p/../etc"),
        ("base_path", "../etc"),
        ("base_path", "/p/a\nb"),
    ):
        with pytest.raises(ParamValidationError):
            dag.params.get_param(name).resolve(bad)
    assert dag.params.get_param("batch_size").resolve(7) == 7
    for good in ("/p", "/p/", "/p/east", "//p/east", "east/2026"):
        assert dag.params.get_param("base_path").resolve(good) == good
    for name in ("batch_size", "max_files_per_run", "stability_delay"):  # the form would clamp to these
        assert not {"minimum", "maximum"} & set(dag.params.get_param(name).schema)


def test_the_form_and_docs_show_the_date_folder_as_an_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = {"project_id": "p", "sftp_conn_id": "s", "document_api_conn_id": "a", "base_path": "/p"}
    project["profile_code"] = "x"
    dag = _load_example_dag([project], tmp_path, monkeypatch).outamation_sftp_ingest_p
    assert "'in_progress/<%m%d%Y>, e.g. 12052026'" in dag.params.get_param("base_path").description
    assert "`/p/in_progress/<%m%d%Y>, e.g. 12052026`" in dag.doc_md


def test_the_dag_list_says_how_each_project_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = {"sftp_conn_id": "s", "document_api_conn_id": "a", "profile_code": "x"}
    projects = [
        {**entry, "project_id": "clock", "base_path": "/clock", "schedule": "@daily"},
        {**entry, "project_id": "hand", "base_path": "/hand", "schedule": None},
        {**entry, "project_id": "drop", "base_path": "/drop", "schedule": "event"},
    ]
    module = _load_example_dag(projects, tmp_path, monkeypatch)
    clock, hand, drop = (getattr(module, f"outamation_sftp_ingest_{p}") for p in ("clock", "hand", "drop"))
    assert clock.dag_display_name == "Outamation SFTP ingest: clock"
    assert hand.dag_display_name == "Outamation SFTP ingest: hand (manual only)"
    assert hand.description.startswith("Manual only: ")
    assert drop.dag_display_name == "Outamation SFTP ingest: drop (runs when files are ready)"
    assert drop.description.startswith(
        "Runs when files are ready in /drop/input (watched only while unpaused):"
    )


@dataclass
class ExampleProject:
    """The example DAG run against the asyncssh server (connection set) and the receiver's connection."""

    server: SftpTestServer
    api_conn_id: str
    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch

    def base(self, prefix: str) -> str:
        """A project folder of this test on the server."""
        return self.server.remote_path(f"{prefix}-{self.tmp_path.name}")

    def load_entries(self, projects: list[dict[str, object]]) -> ModuleType:
        """The example DAG file loaded with these project entries."""
        return _load_example_dag(projects, self.tmp_path, self.monkeypatch)

    def load(self, base: str, **settings: object) -> ModuleType:
        """The example DAG file loaded with the one project ``dagtest`` at ``base``."""
        return self.load_entries([_project(base, self.api_conn_id, **settings)])


@pytest.fixture
def example(
    airflow_db: str,
    asyncssh_server: SftpTestServer,
    document_api_conn_id: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> ExampleProject:
    monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_EXAMPLE_SFTP", asyncssh_server.connection_json())
    return ExampleProject(asyncssh_server, document_api_conn_id, tmp_path, monkeypatch)


@pytest.mark.slow
def test_full_run_claims_batches_and_sends_signed_calls(
    example: ExampleProject,
    document_api_receiver: DocumentApiReceiver,
) -> None:
    base = example.base("example")
    for i in range(7):
        example.server.write(f"{base}/input/doc{i}.pdf", b"%PDF-1.7 " + bytes([i]) * 100)
    dag = example.load(base).outamation_sftp_ingest_dagtest
    with example.server.growing_file(f"{base}/input/growing.pdf"):
        dag_run = dag.test(run_conf={"stability_delay": 0.4, "batch_size": 3, "uploaded_by": "tester"})

    assert dag_run.state == "success"
    assert _task_tries(dag_run)["check_run"][0] == "success"  # not skipped
    (claim,) = xcom_values(dag.dag_id, dag_run.run_id, "claim_files")
    assert (claim["file_count"], claim["files"]) == (7, [f"doc{i}.pdf" for i in range(7)])
    claimed = claimed_file_dicts(claim, dag.get_task("claim_files").sftp_conn_id)
    assert sorted(c["filename"] for c in claimed) == [f"doc{i}.pdf" for i in range(7)]
    folder = os.path.dirname(claimed[0]["backup_path"])
    assert folder.startswith(f"{base}/in_progress/")
    assert os.listdir(example.server.local_path(f"{base}/input")) == ["growing.pdf"]  # still being written
    (summary,) = xcom_values(dag.dag_id, dag_run.run_id, "submit_batches")
    assert (summary["batches"], summary["sent"], summary["failed"]) == (3, 3, 0)
    requests = document_api_receiver.requests
    assert len(requests) == 3
    assert all(r.valid for r in requests)
    payloads = [r.json() for r in requests]
    assert sorted(len(p["files"]) for p in payloads) == [1, 3, 3]
    assert {(p["uploaded_by"], p["source"], p["profile_code"]) for p in payloads} == {
        ("tester", "SFTP", "intake")
    }
    sent = sorted(f["backup_path"] for p in payloads for f in p["files"])
    assert sent == sorted(c["backup_path"] for c in claimed)
    status = PooledSFTPHook(ssh_conn_id="outamation_example_sftp").claim_status(
        folder, manifest_id_for(dag.dag_id, dag_run.run_id)
    )
    assert status == {"sent": sorted(sent), "unsent": []}
    (at_a_glance,) = xcom_values(dag.dag_id, dag_run.run_id, "project_status")
    assert at_a_glance["ready"] == 1  # growing.pdf
    assert at_a_glance["total"] == {"claimed": 7, "sent": 7, "unsent": 0, "rejected": 0, "completed": 0}


@pytest.mark.slow
def test_an_event_mode_run_that_sends_is_three_tasks_one_that_claims_nothing_does_the_housekeeping(
    example: ExampleProject,
    document_api_receiver: DocumentApiReceiver,
) -> None:
    base = example.base("event")
    example.server.write(f"{base}/input/doc.pdf", b"%PDF-1.7 event")
    dag = example.load(base, schedule="event").outamation_sftp_ingest_dagtest

    sending = dag.test(run_conf={"stability_delay": 0.3})
    assert sending.state == "success"
    ran = {task for task, (state, _) in _task_tries(sending).items() if state != "skipped"}
    assert ran == {"wait_for_files", "claim_files", "submit_batches"}
    assert [f["filename"] for r in document_api_receiver.requests for f in r.json()["files"]] == ["doc.pdf"]

    idle = dag.test(run_conf={"stability_delay": 0.3})
    assert idle.state == "success"
    states = {task: state for task, (state, _) in _task_tries(idle).items()}
    assert states == {
        "wait_for_files": "skipped",  # nothing to claim: the housekeeping runs
        "claim_files": "skipped",
        "submit_batches": "skipped",
        "resend_unsent": "success",
        "project_status": "success",
        "check_alerts": "success",
        "check_run": "success",
    }


def _project(base: str, api_conn_id: str, **settings: object) -> dict[str, object]:
    return {
        "project_id": "dagtest",
        "sftp_conn_id": "outamation_example_sftp",
        "document_api_conn_id": api_conn_id,
        "base_path": base,
        "profile_code": "intake",
        "poke_interval": 0.3,
        **settings,
    }


@pytest.mark.slow
def test_a_run_beyond_max_map_length_sends_every_file(
    example: ExampleProject,
    document_api_receiver: DocumentApiReceiver,
) -> None:
    """60 batches of 1 with Airflow's max_map_length at 10: the 0.1 DAG claimed all and sent none."""
    base = example.base("maplen")
    for i in range(60):
        example.server.write(f"{base}/input/doc{i:02}.pdf", b"%PDF-1.7 " + bytes([i]))
    example.monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "10")
    dag = example.load(base)
    dag_run = dag.outamation_sftp_ingest_dagtest.test(run_conf={"stability_delay": 0.3, "batch_size": 1})

    assert dag_run.state == "success"
    sent = [f["filename"] for r in document_api_receiver.requests for f in r.json()["files"]]
    assert sorted(sent) == [f"doc{i:02}.pdf" for i in range(60)]
    assert len(set(document_api_receiver.accepted_ids)) == 60
    assert os.listdir(example.server.local_path(f"{base}/input")) == []


@pytest.mark.slow
def test_max_files_per_run_leaves_the_rest_in_input_for_the_next_runs(
    example: ExampleProject,
    document_api_receiver: DocumentApiReceiver,
) -> None:
    base = example.base("cap")
    for i in range(12):
        example.server.write(f"{base}/input/doc{i:02}.pdf", b"%PDF-1.7 " + bytes([i]))
    project = _project(base, example.api_conn_id, max_files_per_run=5)
    dag = example.load_entries([project]).outamation_sftp_ingest_dagtest
    input_dir = example.server.local_path(f"{base}/input")

    remaining = []
    for _ in range(3):
        assert dag.test(run_conf={"stability_delay": 0.3}).state == "success"
        remaining.append(len(os.listdir(input_dir)))

    assert remaining == [7, 2, 0]
    sent = [f["filename"] for r in document_api_receiver.requests for f in r.json()["files"]]
    assert sorted(sent) == [f"doc{i:02}.pdf" for i in range(12)]  # each file once, in the first run's order
    assert sent[:5] == [f"doc{i:02}.pdf" for i in range(5)]


@pytest.mark.slow
@pytest.mark.parametrize("escape", ["{base}/../beta", "/", "{base}/../../", "../beta", "{base}-beta"])
def test_base_path_from_the_trigger_form_cannot_leave_the_project_folder(
    escape: str,
    example: ExampleProject,
    document_api_receiver: DocumentApiReceiver,
) -> None:
    """
    The probe moved beta's files and posted them under acme's profile with base_path=<acme>/../beta.
    The param's pattern refuses the run before it starts (as the trigger form and API do).
    """
    from airflow.sdk.exceptions import ParamValidationError

    root = example.base("confine")
    base = f"{root}/acme"
    for folder in (f"{root}/beta/input", f"{root}/acme-beta/input", f"{base}/input"):
        example.server.write(f"{folder}/secret.pdf", b"%PDF-1.7 not acme's")
    dag = example.load(base)

    with pytest.raises(ParamValidationError, match="param base_path"):
        dag.outamation_sftp_ingest_dagtest.test(
            run_conf={"base_path": escape.format(base=base), "stability_delay": 0.3}
        )

    assert document_api_receiver.requests == []
    for folder in ("beta", "acme-beta", "acme"):
        assert os.listdir(example.server.local_path(f"{root}/{folder}/input")) == ["secret.pdf"]


@pytest.mark.slow
def test_base_path_may_name_a_subfolder_of_the_project(
    example: ExampleProject,
    document_api_receiver: DocumentApiReceiver,
) -> None:
    base = example.base("sub")
    example.server.write(f"{base}/east/input/a.pdf", b"%PDF-1.7 east")
    dag = example.load(base)

    dag_run = dag.outamation_sftp_ingest_dagtest.test(run_conf={"base_path": "east", "stability_delay": 0.3})

    assert dag_run.state == "success"
    (request,) = document_api_receiver.requests
    assert request.json()["files"][0]["backup_path"].startswith(f"{base}/east/in_progress/")


def _dag_bag(projects: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DagBag:
    from airflow.dag_processing.dagbag import DagBag

    projects_file = tmp_path / "projects.json"
    projects_file.write_text(projects if isinstance(projects, str) else json.dumps(projects))
    monkeypatch.setenv("OUTAMATION_PROJECTS_FILE", str(projects_file))
    return DagBag(dag_folder=str(DAG_FILE))


def test_bad_entries_get_a_visible_placeholder_and_the_good_dag_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROFILE_CODE", raising=False)
    good = {"project_id": "good", "sftp_conn_id": "s", "document_api_conn_id": "a", "base_path": "/good"}
    projects = [
        {**good, "profile_code": "intake"},
        {**good, "project_id": "typo", "base_pth": "/typo"},
        {**good, "project_id": "noprofile"},
    ]
    bag = _dag_bag(projects, tmp_path, monkeypatch)

    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == [
        "outamation_sftp_ingest-invalid-1-typo",
        "outamation_sftp_ingest-invalid-2-noprofile",
        "outamation_sftp_ingest_good",
    ]
    typo = bag.dags["outamation_sftp_ingest-invalid-1-typo"]
    assert "unknown key 'base_pth' (did you mean 'base_path'?)" in typo.description
    assert "project 'typo' (entry 1)" in typo.doc_md
    assert typo.description.startswith("unknown key 'base_pth' (did you mean 'base_path'?)")
    assert typo.dag_display_name == (
        "INVALID project entry: typo: unknown key 'base_pth' (did you mean 'base_path'?)"
    )
    noprofile = bag.dags["outamation_sftp_ingest-invalid-2-noprofile"]
    assert noprofile.description.startswith("profile_code is missing")
    assert (typo.schedule, typo.is_paused_upon_creation, typo.tags) == (None, True, {"outamation", "invalid"})
    (warnings_of_file,) = bag.captured_warnings.values()
    assert [("typo" in w, "noprofile" in w) for w in warnings_of_file] == [(True, False), (False, True)]


def test_a_projects_file_that_is_not_json_is_an_import_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bag = _dag_bag('[{"project_id": "acme",]', tmp_path, monkeypatch)
    assert bag.dag_ids == []
    (error,) = bag.import_errors.values()
    assert f"projects file {tmp_path / 'projects.json'}" in error


NIGHT_IN_NEW_YORK = datetime(2026, 11, 26, 1, 30, tzinfo=timezone.utc)  # 20:30 on the 25th there


def _noted(dag_run: DagRun) -> str | None:
    """The run's note once the plugin's listener was told it failed (as the scheduler does)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    from airflow_outamation.plugins import run_notes

    query = select(DagRun).where(DagRun.dag_id == dag_run.dag_id, DagRun.run_id == dag_run.run_id)
    with create_session() as session:
        run_notes.on_dag_run_failed(dag_run=session.scalars(query).one(), msg="task_failure")
    with create_session() as session:
        return session.scalars(query).one().note


def _task_tries(dag_run: DagRun) -> dict[str, tuple[str, int]]:
    """Each task of the run: its state and try number."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).all()
        return {ti.task_id: (str(ti.state), ti.try_number) for ti in tis}


@pytest.mark.slow
def test_the_date_folder_is_the_runs_date_in_the_projects_timezone(
    example: ExampleProject,
    document_api_receiver: DocumentApiReceiver,
) -> None:
    base = example.base("tz")
    example.server.write(f"{base}/input/a.pdf", b"%PDF-1.7 a")
    project = _project(base, example.api_conn_id, timezone="America/New_York")
    dag = example.load_entries([project]).outamation_sftp_ingest_dagtest

    dag_run = dag.test(logical_date=NIGHT_IN_NEW_YORK, run_conf={"stability_delay": 0.3})

    assert dag_run.state == "success"
    assert _task_tries(dag_run)["check_run"][0] == "success"  # not skipped
    (claim,) = xcom_values(dag.dag_id, dag_run.run_id, "claim_files")
    assert claim["claim_dir"] == f"{base}/in_progress/11252026"


@pytest.mark.slow
def test_payload_values_arrive_exactly_and_a_renamed_file_keeps_its_uploaded_name(
    example: ExampleProject,
    document_api_receiver: DocumentApiReceiver,
) -> None:
    """The native-object DAG sent profile_code "007" as 7 and the clash name "a (1).pdf" as filename."""
    base = example.base("exact")
    example.server.write(f"{base}/in_progress/11262026/a.pdf", b"%PDF-1.7 claimed this morning")
    example.server.write(f"{base}/input/a.pdf", b"%PDF-1.7 uploaded again")
    dag = example.load(base)

    conf = {"stability_delay": 0.3, "profile_code": "007", "uploaded_by": "2024", "source": "True"}
    dag_run = dag.outamation_sftp_ingest_dagtest.test(logical_date=NIGHT_IN_NEW_YORK, run_conf=conf)

    assert dag_run.state == "success"
    (request,) = document_api_receiver.requests
    assert request.json() == {
        "files": [
            {
                "filename": "a.pdf",
                "backup_path": f"{base}/in_progress/11262026/a (1).pdf",
                "stored_name": "a (1).pdf",
            }
        ],
        "uploaded_by": "2024",
        "source": "True",
        "profile_code": "007",
    }
    stored = example.server.local_path(f"{base}/in_progress/11262026/a (1).pdf")
    assert Path(stored).read_bytes() == b"%PDF-1.7 uploaded again"


@pytest.mark.slow
def test_the_entrys_api_url_beats_the_connection_and_doc_ai_api_url(
    example: ExampleProject,
    document_api_receiver: DocumentApiReceiver,
) -> None:
    base = example.base("url")
    example.server.write(f"{base}/input/a.pdf", b"%PDF-1.7 a")
    example.monkeypatch.setenv("DOC_AI_API_URL", document_api_receiver.url.replace("/process", "/env"))
    api_url = document_api_receiver.url.replace("/process", "/acme")
    dag = example.load(base, api_url=api_url)

    dag_run = dag.outamation_sftp_ingest_dagtest.test(run_conf={"stability_delay": 0.3})

    assert dag_run.state == "success"
    assert [r.path for r in document_api_receiver.requests] == ["/acme"]


@pytest.mark.slow
def test_a_wrong_sftp_password_fails_the_run_without_retries(
    example: ExampleProject,
    document_api_receiver: DocumentApiReceiver,
) -> None:
    base = example.base("auth")
    example.server.write(f"{base}/input/a.pdf", b"%PDF-1.7 a")
    conn = example.server.connection_dict()
    conn["password"] = "not-the-password-42"
    del conn["extra"]["key_file"]
    example.monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_EXAMPLE_SFTP", json.dumps(conn))
    dag = example.load(base)

    dag_run = dag.outamation_sftp_ingest_dagtest.test(run_conf={"stability_delay": 0.3})

    assert dag_run.state == "failed"
    assert _task_tries(dag_run)["wait_for_files"] == ("failed", 1)
    assert document_api_receiver.requests == []


@pytest.mark.slow
def test_an_api_400_fails_the_submit_without_retries(
    example: ExampleProject,
    document_api_receiver: DocumentApiReceiver,
) -> None:
    base = example.base("api400")
    example.server.write(f"{base}/input/a.pdf", b"%PDF-1.7 a")
    document_api_receiver.script(400, 400, 400, 400)
    dag = example.load(base)

    dag_run = dag.outamation_sftp_ingest_dagtest.test(run_conf={"stability_delay": 0.3})

    assert dag_run.state == "failed"
    assert _task_tries(dag_run)["submit_batches"] == ("failed", 1)
    assert _task_tries(dag_run)["project_status"] == ("success", 1)  # logged despite the failure
    assert _task_tries(dag_run)["check_run"] == ("failed", 1)  # the run's last word: submit_batches failed
    (error,) = xcom_values(dag_run.dag_id, dag_run.run_id, "submit_batches", key="failure")
    assert error.startswith("DocumentApiRejectedError: ")
    assert "400" in error
    assert _noted(dag_run) == f"submit_batches failed: {error}"
    assert len(document_api_receiver.requests) == 1
    (folder,) = os.listdir(example.server.local_path(f"{base}/rejected"))
    assert "a.pdf" in os.listdir(example.server.local_path(f"{base}/rejected/{folder}"))


@pytest.mark.slow
def test_the_claims_asset_event_names_the_folder_and_the_uploaded_files(
    example: ExampleProject,
    document_api_receiver: DocumentApiReceiver,
) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    from airflow_outamation.assets import in_progress_asset

    base = example.base("asset")
    example.server.write(f"{base}/in_progress/11262026/b.pdf", b"%PDF-1.7 earlier b")
    for name in ("a.pdf", "b.pdf"):
        example.server.write(f"{base}/input/{name}", b"%PDF-1.7 " + name.encode())
    dag = example.load(base)

    dag_run = dag.outamation_sftp_ingest_dagtest.test(
        logical_date=NIGHT_IN_NEW_YORK, run_conf={"stability_delay": 0.3}
    )

    assert dag_run.state == "success"
    with create_session() as session:
        extras = [
            event.extra
            for event in session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(
                AssetModel.uri == in_progress_asset("dagtest").uri, AssetEvent.source_run_id == dag_run.run_id
            )
        ]
    assert extras == [
        {"in_progress": [f"{base}/in_progress/11262026"], "file_count": 2, "files": ["a.pdf", "b.pdf"]}
    ]


def test_the_invalid_entry_warning_stays_out_of_other_projects_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = {"project_id": "good", "sftp_conn_id": "s", "document_api_conn_id": "a", "base_path": "/good"}
    projects = [{**good, "profile_code": "intake"}, {**good, "project_id": "typo", "base_pth": "/typo"}]
    # What Airflow's task runner sets before it parses the DAG file of the task it runs.
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "outamation_sftp_ingest_good")
    assert _dag_bag(projects, tmp_path, monkeypatch).captured_warnings == {}
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "outamation_sftp_ingest-invalid-1-typo")
    (warnings_of_file,) = _dag_bag(projects, tmp_path, monkeypatch).captured_warnings.values()
    assert "unknown key 'base_pth'" in warnings_of_file[0]


def test_each_dag_shows_its_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = {
        "project_id": "acme",
        "sftp_conn_id": "sftp_acme",
        "document_api_conn_id": "api_acme",
        "base_path": "/upload/acme",
        "profile_code": "intake",
        "schedule": "*/15 * * * *",
        "owner": "acme-team",
        "source_dir": "drop",
        "regex": r"INV-\d+\.pdf",
        "max_age": 86400,
        "done_marker": ".done",
        "max_size": 1000,
        "recursive": True,
    }
    dag = _load_example_dag([project], tmp_path, monkeypatch).outamation_sftp_ingest_acme
    assert dag.dag_display_name == "Outamation SFTP ingest: acme"
    assert {task.owner for task in dag.tasks} == {"acme-team"}
    for text in (
        "sftp_acme",
        "api_acme",
        "/upload/acme/drop",
        "*/15 * * * *",
        "outamation://acme/in_progress",
        r"files matching `regex INV-\d+\.pdf`; files older than 86400 s are left alone",
        "each ready only beside its `<name>.done` marker",
        "files over 1000 bytes go to `rejected/<date>/` unsent",
        "files in subfolders too, claimed flat into the date folder",
    ):
        assert text in dag.doc_md
    assert dag.get_task("wait_for_files").readiness["regex"] == r"INV-\d+\.pdf"
    assert dag.get_task("wait_for_files").readiness["done_marker"] == ".done"
    assert dag.get_task("claim_files").done_marker == ".done"
    assert dag.get_task("wait_for_files").readiness["recursive"] is True
    assert dag.get_task("claim_files").recursive is True
    assert dag.get_task("submit_batches").max_size == 1000
    assert "Resending a batch" in dag.doc_md
    batch_size = dag.params.get_param("batch_size")
    assert (batch_size.schema["title"], batch_size.description) == (
        "Batch size",
        "Files per API call (1 to 100).",
    )
    assert dag.params.get_param("stability_delay").value == 1.2


def test_an_event_mode_entry_is_scheduled_on_its_watched_input_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk import Asset

    from airflow_outamation.assets import in_progress_asset
    from airflow_outamation.triggers.sftp_event import ReadyFilesEventTrigger

    entries = [
        {
            "project_id": project_id,
            "sftp_conn_id": "sftp_acme",
            "document_api_conn_id": "api",
            "base_path": f"/{project_id}/",
            "profile_code": "intake",
            "schedule": schedule,
            "poke_interval": 3,
            "max_files_per_run": 50,
        }
        for project_id, schedule in (("acme", "event"), ("cron", "*/15 * * * *"))
    ]
    module = _load_example_dag(entries, tmp_path, monkeypatch)
    dag = module.outamation_sftp_ingest_acme
    (asset,) = dag.timetable.asset_condition.objects
    assert isinstance(asset, Asset)
    assert (asset.name, asset.uri) == ("outamation_ready_files_acme", "outamation://acme/input")
    assert (asset.name, asset.uri) != (in_progress_asset("acme").name, in_progress_asset("acme").uri)
    (watcher,) = asset.watchers
    assert isinstance(watcher.trigger, ReadyFilesEventTrigger)
    assert watcher.trigger.serialize()[1] == {
        "sftp_conn_id": "sftp_acme",
        "directory": "/acme/input",
        "project_id": "acme",
        "settings": {"pattern": "*.pdf", "stability_delay": 1.2, "min_age": 0.0, "min_size": 1},
        "max_files": 50,
        "poke_interval": 3,
        "reannounce_after": 600.0,
    }
    sensor = dag.get_task("wait_for_files")
    assert (sensor.deferrable, sensor.timeout, sensor.soft_fail) == (False, 0, True)
    assert not sensor.upstream_task_ids  # a file's path to the API: wait, claim, send
    assert sensor.skip_scheduled is True  # a sweep run does the housekeeping only
    assert dag.get_task("resend_unsent").upstream_task_ids == {"wait_for_files"}
    assert dag.get_task("resend_unsent").downstream_task_ids == {"project_status", "check_alerts"}
    for task_id in ("resend_unsent", "check_alerts"):  # runs overlap: housekeeping and alerts do not
        assert dag.get_task(task_id).max_active_tis_per_dag == 1
    assert dag.max_active_runs == 3
    assert dag.timetable.timetable.delta == timedelta(minutes=15)  # the sweep
    cron = module.outamation_sftp_ingest_cron
    assert cron.get_task("wait_for_files").deferrable is True
    assert [name for name in vars(module) if name.startswith("outamation_sftp_ingest-")] == []


def _entry(project_id: str, base_path: str, **settings: object) -> dict[str, object]:
    return {
        "project_id": project_id,
        "sftp_conn_id": "s",
        "document_api_conn_id": "a",
        "base_path": base_path,
        "profile_code": "intake",
        **settings,
    }


def test_one_bad_entry_never_takes_the_other_projects_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_outamation.ingestion_status import placeholder_dag_id

    longest = "L" * 100
    entries = [
        _entry("good", "/good"),
        _entry("x" * 101, "/long"),
        _entry(longest, "/longest"),
        _entry("nan", "/nan", poke_interval=float("nan")),
        _entry("inf", "/inf", stability_delay=float("inf")),
        _entry("spaced", "/spaced ", schedule="event"),
        _entry("acme_invalid", "/acme_invalid"),
        _entry("acme", "/acme", batch_size=0),
        _entry("dup", "/dup1", batch_size=0),
        _entry("dup", "/dup2", batch_size=0),
        _entry("hidden", "/hidden", date_format=".%m%d%Y"),
    ]
    text = json.dumps(entries)  # NaN and Infinity, as Python's json writes and reads them
    assert "NaN" in text
    assert "Infinity" in text
    bag = _dag_bag(text, tmp_path, monkeypatch)

    assert bag.import_errors == {}
    valid = {
        "outamation_sftp_ingest_good",
        f"outamation_sftp_ingest_{longest}",
        "outamation_sftp_ingest_acme_invalid",
    }
    placeholders = {placeholder_dag_id(e, i) for i, e in [(1, None), (3, "nan"), (4, "inf"), (5, "spaced")]}
    placeholders |= {
        placeholder_dag_id(e, i) for i, e in [(7, "acme"), (8, "dup"), (9, "dup"), (10, "hidden")]
    }
    assert len(placeholders) == 8
    assert set(bag.dag_ids) == valid | placeholders
    assert bag.dags["outamation_sftp_ingest_acme_invalid"].tags == {"outamation", "sftp", "acme_invalid"}
    assert "batch_size" in bag.dags[placeholder_dag_id("acme", 7)].description
    assert "project 'dup' (entry 9)" in bag.dags[placeholder_dag_id("dup", 9)].doc_md


def test_overlapping_project_folders_are_refused_naming_each_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_outamation.ingestion_status import placeholder_dag_id

    entries = [
        _entry("outer", "/upload/acme"),
        _entry("inner", "/upload/acme/east"),
        _entry("other", "/upload/b"),
    ]
    bag = _dag_bag(entries, tmp_path, monkeypatch)

    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {
        "outamation_sftp_ingest_other",
        placeholder_dag_id("outer", 0),
        placeholder_dag_id("inner", 1),
    }
    assert "project 'inner' (entry 1)" in bag.dags[placeholder_dag_id("outer", 0)].description
    assert "project 'outer' (entry 0)" in bag.dags[placeholder_dag_id("inner", 1)].description


SECRET_URL = "https://probe:hunter2-pass@api.example.com/v1/process?api_key=Qk7-tok3n-9f8e#frag-secret"


def _shown(dag: object) -> str:
    """Everything a DAG reader sees of a DAG: docs, description, display name, params and their texts."""
    params = dag.params  # type: ignore[attr-defined]
    texts = [dag.doc_md, dag.description, dag.dag_display_name]  # type: ignore[attr-defined]
    texts += [json.dumps(params.get_param(name).dump(), default=str) for name in params]
    return "\n".join(str(text) for text in texts)


def test_no_url_credential_or_query_in_what_dag_readers_see(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_outamation.ingestion_status import placeholder_dag_id

    entries = [
        _entry("acme", "/acme", api_url=SECRET_URL),
        _entry("bad", "/bad", api_url=SECRET_URL, batch_size=0),
    ]
    bag = _dag_bag(entries, tmp_path, monkeypatch)

    good, bad = bag.dags["outamation_sftp_ingest_acme"], bag.dags[placeholder_dag_id("bad", 1)]
    assert "https://api.example.com/v1/process" in good.doc_md  # the URL itself still shows
    for dag in (good, bad):
        shown = _shown(dag)
        for secret in ("hunter2-pass", "probe:", "Qk7-tok3n-9f8e", "api_key", "frag-secret"):
            assert secret not in shown, (dag.dag_id, secret)


def test_every_task_has_an_execution_timeout_derived_from_its_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = [
        _entry("small", "/small", max_files_per_run=10),
        _entry("big", "/big", max_files_per_run=50_000, max_in_flight=2),
        _entry("watched", "/watched", schedule="event"),
    ]
    module = _load_example_dag(entries, tmp_path, monkeypatch)
    small, big = module.outamation_sftp_ingest_small, module.outamation_sftp_ingest_big
    for dag in (small, big, module.outamation_sftp_ingest_watched):
        for task in dag.tasks:
            assert isinstance(task.execution_timeout, timedelta), (dag.dag_id, task.task_id)
            assert task.execution_timeout >= timedelta(minutes=10), (dag.dag_id, task.task_id)
    for task_id in ("resend_unsent", "claim_files", "submit_batches"):
        assert big.get_task(task_id).execution_timeout > small.get_task(task_id).execution_timeout
    sensor = small.get_task("wait_for_files")
    assert sensor.execution_timeout > timedelta(seconds=sensor.timeout)


def test_the_entry_decides_the_name_encoding_and_confines_every_task_to_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _load_example_dag(
        [_entry("latin", "/upload/latin", name_encoding="latin-1")], tmp_path, monkeypatch
    )
    dag = module.outamation_sftp_ingest_latin
    assert dag.get_task("claim_files").name_encoding == "latin-1"
    for task_id in ("wait_for_files", "claim_files", "project_status"):
        assert dag.get_task(task_id).project_root == "/upload/latin", task_id


def test_an_event_mode_entry_without_a_sweep_runs_on_its_events_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk import AssetOrTimeSchedule

    entries = [_entry("quiet", "/quiet", schedule="event", sweep_interval=None)]
    dag = _load_example_dag(entries, tmp_path, monkeypatch).outamation_sftp_ingest_quiet
    assert not isinstance(dag.timetable, AssetOrTimeSchedule)
    assert [asset.name for asset in dag.timetable.asset_condition.objects] == ["outamation_ready_files_quiet"]

"""The README's first command: the demo runs the whole pipeline in event mode, on real Airflow processes."""

from __future__ import annotations

import pytest

from airflow_outamation.testing.document_api_receiver import ReceivedRequest
from outamation_testbed import demo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _names(request: ReceivedRequest) -> list[str]:
    return [file["filename"] for file in request.json()["files"]]


def test_the_watcher_starts_every_run_and_every_file_is_accepted_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, outcome = demo.run_demo()
    output = capsys.readouterr().out

    assert code == 0, output[-6000:]
    assert "FAIL" not in output
    assert [(run.run_type, run.state) for run in outcome.runs] == [
        ("asset_triggered", "failed"),
        ("asset_triggered", "success"),
        ("asset_triggered", "success"),
    ]
    assert all(request.valid for request in outcome.requests)
    accepted = [request for request in outcome.requests if request.reply.status == 200]
    refused = [request for request in outcome.requests if request.reply.status == 400]
    samples = [f"invoice_{number:03}.pdf" for number in range(1, demo.SAMPLE_FILES + 1)]
    assert sorted(name for request in accepted for name in _names(request)) == sorted(
        [*samples, demo.STILL_WRITING]
    )
    assert len(refused) == 1
    assert demo.REFUSED in _names(refused[0])
    assert outcome.moved_back == sorted(_names(refused[0]))
    resent = next(request for request in accepted if demo.REFUSED in _names(request))
    assert outcome.moved_back_at is not None
    assert resent.received_at > outcome.moved_back_at
    last = next(request for request in accepted if demo.STILL_WRITING in _names(request))
    assert outcome.finished_writing_at is not None
    assert last.received_at > outcome.finished_writing_at
    assert list(outcome.places.values()) == [sorted([*samples, demo.STILL_WRITING])]
    assert all(folder.startswith("processed/") for folder in outcome.places)

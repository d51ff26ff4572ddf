"""The README's first command: the demo runs the whole pipeline and says so."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_succeeds_and_prints_its_summary() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_outamation.demo"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "FAIL" not in result.stdout
    assert "ok   the API refused 1 batch; its 5 files went to rejected/<date>/" in result.stdout
    assert "ok   every one of the 12 PDFs was accepted exactly once" in result.stdout
    assert "ok   4 of 4 signatures verified by the receiver" in result.stdout
    assert "input/: scan_still_uploading.pdf\n" in result.stdout

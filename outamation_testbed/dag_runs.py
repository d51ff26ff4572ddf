"""Helpers to run a DAG written by a test with ``dag.test()`` and read what its tasks returned."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
BUNDLE_CONFIG_ENV = "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"


def load_dag_in_bundle(source: str, directory: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """
    Write a DAG file into ``directory``, make that a DAG bundle and import the file.

    ``dag.test()`` in Airflow 3.3 runs a DAG only when a configured DAG bundle holds its file; the
    bundle is set in ``AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST`` for the test's duration.

    :param source: the DAG file's Python source
    :param directory: a directory for the bundle
    :param monkeypatch: the test's ``monkeypatch``, which undoes the setting afterwards
    """
    directory.mkdir(parents=True, exist_ok=True)
    dag_file = directory / "dag.py"
    dag_file.write_text(source)
    bundles = [
        {"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
        {
            "name": re.sub(r"\W", "-", directory.name),
            "classpath": LOCAL_BUNDLE,
            "kwargs": {"path": str(directory)},
        },
    ]
    monkeypatch.setenv(BUNDLE_CONFIG_ENV, json.dumps(bundles))
    return import_dag_file(dag_file)


def import_dag_file(path: Path) -> ModuleType:
    """Import a DAG file as a module of its own (a name unique to its path)."""
    name = "outamation_dag_" + re.sub(r"\W", "_", str(path))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def xcom_values(dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> list[Any]:
    """The XComs ``key`` of a task in a run, one per map index."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = XComModel.get_many(run_id=run_id, key=key, task_ids=task_id, dag_ids=dag_id)
    with create_session() as session:
        return [XComModel.deserialize_value(row) for row in session.scalars(query)]

"""What an Airflow provider maintainer expects: configured defaults, registrations, one path per class."""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import airflow_outamation
from airflow_outamation.get_provider_info import get_provider_info

PACKAGE = Path(airflow_outamation.__file__).parent


def shipped_modules() -> list[str]:
    found = pkgutil.walk_packages([str(PACKAGE)], prefix="airflow_outamation.")
    return ["airflow_outamation", *sorted(info.name for info in found)]


@pytest.mark.parametrize(("configured", "expected"), [(None, "False"), ("True", "True"), ("False", "False")])
def test_sensor_deferrable_follows_operators_default_deferrable(
    configured: str | None, expected: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"}
    if configured is not None:
        env["AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"] = configured
    code = (
        "from airflow_outamation.sensors.sftp import ReadyFilesSensor\n"
        "print(ReadyFilesSensor(task_id='w', sftp_conn_id='c', directory='/in').deferrable)"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    # Airflow's own default for [operators] default_deferrable is False.
    assert done.stdout.split()[-1] == expected


def test_status_plugin_is_in_the_provider_info_and_airflow_loads_it() -> None:
    from airflow import plugins_manager
    from airflow.providers_manager import ProvidersManager

    plugin_class = "airflow_outamation.plugins.status_plugin.OutamationStatusPlugin"
    assert get_provider_info()["plugins"] == [{"name": "outamation_status", "plugin-class": plugin_class}]
    assert plugin_class in [plugin.plugin_class for plugin in ProvidersManager().plugins]
    names = [plugin["name"] for plugin in plugins_manager.get_plugin_info()]  # the entry point, by default
    assert names.count("outamation_status") == 1


def test_status_plugin_does_not_read_the_command_line() -> None:
    source = (PACKAGE / "plugins" / "status_plugin.py").read_text()
    assert "sys.argv" not in source
    done = subprocess.run(
        [sys.executable, "-c", "import airflow_outamation.plugins.status_plugin, sys;"
         "print('airflow_outamation.plugins.status_page' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.split()[-1] == "False"  # the page's app is built at its first request


def test_asset_uri_scheme_is_registered_and_checked() -> None:
    from airflow.sdk import Asset
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    assert "outamation" in ProvidersManagerTaskRuntime().asset_uri_handlers
    assert Asset(name="a", uri="outamation://acme/input").uri == "outamation://acme/input"
    with pytest.raises(ValueError, match="names one of the folders"):
        Asset(name="b", uri="outamation://acme/elsewhere")
    with pytest.raises(ValueError, match="names a project"):
        Asset(name="c", uri="outamation:///input")


def test_ready_files_event_trigger_has_one_import_path() -> None:
    from airflow_outamation.triggers import sftp, sftp_event

    assert not hasattr(sftp, "ReadyFilesEventTrigger")
    assert sftp_event.ReadyFilesEventTrigger.__module__ == "airflow_outamation.triggers.sftp_event"


def test_a_module_exports_only_classes_it_defines() -> None:
    reexported = []
    for name in shipped_modules():
        module = importlib.import_module(name)
        for attribute in getattr(module, "__all__", ()):
            value = getattr(module, attribute)
            if inspect.isclass(value) and value.__module__ != name and not hasattr(module, "__path__"):
                reexported.append(f"{name}.{attribute}")
    assert reexported == []


def _imports(name: str, modules: set[str]) -> set[str]:
    """The package's modules ``name`` imports, at its top or in a function (not for TYPE_CHECKING)."""
    path = importlib.util.find_spec(name).origin  # type: ignore[union-attr]
    tree = ast.parse(Path(str(path)).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("airflow_outamation"):
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & modules
            found.update(submodules or {node.module})  # `from package import module` uses the module
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("airflow_outamation"))
    return found


def test_no_import_circle() -> None:
    modules = set(shipped_modules())
    graph = {name: sorted(_imports(name, modules) & modules - {name}) for name in modules}
    circles = []

    def visit(name: str, path: list[str]) -> None:
        for imported in graph[name]:
            if imported in path:
                circles.append(" -> ".join([*path[path.index(imported) :], imported]))
            elif imported not in done:
                visit(imported, [*path, imported])
        done.add(name)

    done: set[str] = set()
    for name in sorted(modules):
        visit(name, [name])
    assert circles == []


def test_core_modules_import_neither_pytest_nor_pwd() -> None:
    offenders = []
    for name in shipped_modules():
        if name.startswith("airflow_outamation.testing"):
            continue  # the test bed: needs the [testing] extra and a Unix system
        path = importlib.util.find_spec(name).origin  # type: ignore[union-attr]
        for node in ast.walk(ast.parse(Path(str(path)).read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            offenders += [f"{name}: {n}" for n in names if n.split(".")[0] in ("pytest", "_pytest", "pwd")]
    assert offenders == []


def test_every_shipped_module_imports_without_pytest() -> None:
    script = Path(__file__).resolve().parents[1] / "import_every_module.py"
    done = subprocess.run(
        [sys.executable, str(script), "airflow_outamation"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_numeric_templated_fields_are_typed_as_numbers() -> None:
    from airflow_outamation.operators.batch import BatchFilesOperator
    from airflow_outamation.operators.document_api import SubmitBatchesOperator
    from airflow_outamation.operators.sftp import ClaimFilesOperator
    from airflow_outamation.sensors.sftp import ReadyFilesSensor

    typed_as_text = []
    for operator in (BatchFilesOperator, SubmitBatchesOperator, ClaimFilesOperator, ReadyFilesSensor):
        for cls in operator.__mro__:
            if "__init__" not in vars(cls) or not cls.__module__.startswith("airflow_outamation"):
                continue
            for name, parameter in inspect.signature(cls.__init__).parameters.items():
                default = parameter.default
                numeric = isinstance(default, int | float) and not isinstance(default, bool)
                templated = name in operator.template_fields and (numeric or name == "max_files")
                if templated and "str" in str(parameter.annotation).split(" | "):
                    typed_as_text.append(f"{operator.__name__}.{name}: {parameter.annotation}")
    assert typed_as_text == []

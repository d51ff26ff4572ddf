"""The provider entry point: Airflow finds the package, and everything it lists imports."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from airflow_outamation import __version__
from airflow_outamation.get_provider_info import get_provider_info


def test_entry_point_is_registered() -> None:
    found = [
        ep
        for ep in entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_outamation")
    ]
    assert [ep.load()()["package-name"] for ep in found] == ["airflow-provider-outamation"]


def test_version_matches_package() -> None:
    assert get_provider_info()["versions"] == [__version__]


def test_listed_modules_and_classes_import() -> None:
    info = get_provider_info()
    modules = [
        module
        for key in ("hooks", "operators", "sensors", "triggers")
        for entry in info.get(key, [])
        for module in entry["python-modules"]
    ]
    for module in modules:
        importlib.import_module(module)
    for conn_type in info.get("connection-types", []):
        module_name, _, class_name = conn_type["hook-class-name"].rpartition(".")
        hook_class = getattr(importlib.import_module(module_name), class_name)
        assert hook_class.conn_type == conn_type["connection-type"]


def test_airflow_providers_manager_sees_the_package() -> None:
    from airflow.providers_manager import ProvidersManager

    providers = ProvidersManager().providers
    assert providers["airflow-provider-outamation"].version == __version__

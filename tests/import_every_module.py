"""
Import every module of an installed package with ``pytest`` unimportable; exit 1 naming any that fails.

Usage: ``python tests/import_every_module.py airflow_outamation``. Run as a script, so the package
comes from where it is installed (the wheel in CI), not from the source tree. Only the pytest plugin
and the SMTP test server (``airflow_outamation.testing.pytest_plugin``, ``.smtp_server``) may need
pytest or aiosmtpd: they are what the ``[testing]`` extra is for.
"""

from __future__ import annotations

import importlib
import importlib.abc
import pkgutil
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType

#: The modules that need the ``[testing]`` extra (pytest, aiosmtpd).
NEEDS_TESTING_EXTRA = frozenset(
    {"airflow_outamation.testing.pytest_plugin", "airflow_outamation.testing.smtp_server"}
)
BLOCKED = ("pytest", "_pytest")


class PytestBlocker(importlib.abc.MetaPathFinder):
    """Make ``import pytest`` fail as it would where pytest is not installed."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> None:
        if fullname.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {fullname!r} (blocked)", name=fullname)


def module_names(package: str) -> list[str]:
    """The package and every module and subpackage under it, as installed."""
    root = importlib.import_module(package)
    found = pkgutil.walk_packages(root.__path__, prefix=f"{package}.")
    return [package, *sorted(info.name for info in found)]


def main(package: str) -> int:
    for name in BLOCKED:
        sys.modules.pop(name, None)
    sys.meta_path.insert(0, PytestBlocker())
    failed = []
    names = [name for name in module_names(package) if name not in NEEDS_TESTING_EXTRA]
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:
            failed.append(name)
            traceback.print_exc()
    print(f"{len(names) - len(failed)} of {len(names)} modules of {package} import without pytest")
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

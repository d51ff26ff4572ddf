"""Provider metadata read by Airflow's providers manager (``airflow providers list``)."""

from __future__ import annotations

from typing import Any

from airflow_outamation import __version__


def get_provider_info() -> dict[str, Any]:
    """Describe the package, its hooks, connection types, triggers, sensors and operators."""
    return {
        "package-name": "airflow-provider-outamation",
        "name": "Outamation",
        "description": "Wait for fully uploaded files in SFTP drop folders, claim them safely and "
        "post them in batches to the Outamation document API with HMAC signatures.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Outamation document intake",
                "external-doc-url": "https://github.com/outamation/airflow-outamation",
                "tags": ["protocol"],
            }
        ],
    }

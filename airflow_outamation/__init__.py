"""Airflow provider for the Outamation SFTP document-intake pipeline."""

from __future__ import annotations

__version__ = "0.1.0"

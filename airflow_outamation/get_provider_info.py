"""Provider metadata read by Airflow's providers manager (``airflow providers list``)."""

from __future__ import annotations

from typing import Any

from airflow_outamation import __version__


def get_provider_info() -> dict[str, Any]:
    """Describe the package: hooks, connection types, triggers, sensors, operators, plugin, asset URIs."""
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
        "hooks": [
            {
                "integration-name": "Outamation document intake",
                "python-modules": [
                    "airflow_outamation.hooks.document_api",
                    "airflow_outamation.hooks.sftp",
                    "airflow_outamation.hooks.sftp_async",
                ],
            },
        ],
        "triggers": [
            {
                "integration-name": "Outamation document intake",
                "python-modules": [
                    "airflow_outamation.triggers.sftp",
                    "airflow_outamation.triggers.sftp_event",
                ],
            },
        ],
        "sensors": [
            {
                "integration-name": "Outamation document intake",
                "python-modules": ["airflow_outamation.sensors.sftp"],
            },
        ],
        "operators": [
            {
                "integration-name": "Outamation document intake",
                "python-modules": [
                    "airflow_outamation.operators.batch",
                    "airflow_outamation.operators.document_api",
                    "airflow_outamation.operators.sftp",
                ],
            },
        ],
        "plugins": [
            {
                "name": "outamation_status",
                "plugin-class": "airflow_outamation.plugins.status_plugin.OutamationStatusPlugin",
            }
        ],
        "asset-uris": [
            {"schemes": ["outamation"], "handler": "airflow_outamation.assets.sanitize_uri"},
        ],
        "config": {
            "outamation": {
                "description": "Settings of the Outamation provider.",
                "options": {
                    "ssh_log_level": {
                        "description": "Log level of the SSH libraries (asyncssh, paramiko) in tasks and "
                        "the triggerer, e.g. DEBUG to see every connection's handshake. Empty: WARNING, "
                        "unless Airflow's logging configuration sets these loggers.",
                        "version_added": "0.3.0",
                        "type": "string",
                        "example": "DEBUG",
                        "default": "",
                    },
                    "status_page_timeout": {
                        "description": "Seconds the ingestion status page waits for each project's SFTP "
                        "server; a server that answers later shows an error in its row.",
                        "version_added": "0.3.0",
                        "type": "float",
                        "example": "5",
                        "default": "10",
                    },
                },
            },
        },
        "connection-types": [
            {
                "connection-type": "outamation_document_api",
                "hook-class-name": "airflow_outamation.hooks.document_api.DocumentApiHook",
                "hook-name": "Outamation Document API",
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {
                        "host": "API URL",
                        "login": "OAuth2 client id",
                        "password": "HMAC secret",
                        "schema": "Scheme (when the URL has none)",
                    },
                    "placeholders": {
                        "host": "https://api.example.com/process",
                        "password": "whsec_<base64> (Standard Webhooks) or any text",
                        "schema": "https",
                    },
                },
                "conn-fields": {
                    "profile_code": {
                        "label": "Profile code",
                        "description": "Default profile_code of the payload when the task gives none.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "signature_scheme": {
                        "label": "Signature scheme",
                        "description": "standard-webhooks: webhook-id/-timestamp/-signature headers; "
                        "hex-hmac: sha256=<hex> over timestamp.body in the signature header; "
                        "github: X-Hub-Signature-256; stripe: Stripe-Signature; slack: X-Slack-Signature; "
                        "none: unsigned (authenticate with an API key or OAuth2).",
                        "schema": {
                            "type": "string",
                            "enum": ["standard-webhooks", "hex-hmac", "github", "stripe", "slack", "none"],
                            "default": "standard-webhooks",
                        },
                    },
                    "signature_header": {
                        "label": "Signature header (hex-hmac)",
                        "description": "Header that carries the hex-hmac signature.",
                        "schema": {"type": ["string", "null"], "default": "X-Signature"},
                    },
                    "auth": {
                        "label": "Authentication",
                        "description": "Besides (or instead of) the signature: none, api-key (a static "
                        "header) or oauth2 (client credentials; token cached, refreshed once on 401).",
                        "schema": {
                            "type": "string",
                            "enum": ["none", "api-key", "oauth2"],
                            "default": "none",
                        },
                    },
                    "api_key": {
                        "label": "API key (api-key)",
                        "description": "Empty with signature scheme none: the password is the key.",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "api_key_header": {
                        "label": "API key header (api-key)",
                        "description": "Header that carries the API key.",
                        "schema": {"type": ["string", "null"], "default": "X-API-Key"},
                    },
                    "token_url": {
                        "label": "Token URL (oauth2)",
                        "description": "The OAuth2 token endpoint (client credentials grant).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "client_id": {
                        "label": "Client id (oauth2)",
                        "description": "Empty: the login is the client id.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "client_secret": {
                        "label": "Client secret (oauth2)",
                        "description": "Empty with signature scheme none: the password is the client secret.",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "scope": {
                        "label": "Scope (oauth2)",
                        "description": "The scope to ask the token endpoint for; empty: none.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "timeout": {
                        "label": "Timeout (seconds)",
                        "description": "Connect and read timeout of each attempt.",
                        "schema": {"type": ["number", "null"], "default": 30, "minimum": 0},
                    },
                    "max_retries": {
                        "label": "Retry count",
                        "description": "Retries after the first attempt on connection errors, "
                        "timeouts, 408, 429 and 5xx.",
                        "schema": {"type": ["integer", "null"], "default": 5, "minimum": 0},
                    },
                    "backoff_initial": {
                        "label": "First backoff (seconds)",
                        "description": "Exponential backoff starts here, with as much random jitter.",
                        "schema": {"type": ["number", "null"], "default": 1, "minimum": 0},
                    },
                    "backoff_max": {
                        "label": "Longest wait (seconds)",
                        "description": "Upper bound of each wait between attempts, Retry-After included.",
                        "schema": {"type": ["number", "null"], "default": 60, "minimum": 0},
                    },
                    "ca_bundle": {
                        "label": "CA bundle (path)",
                        "description": "PEM file (or directory) on the workers with the CA that signed "
                        "the API's TLS certificate, or the self-signed certificate itself. "
                        "Empty: the system's CAs.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "expected_content_type": {
                        "label": "Expected content type",
                        "description": "A 2xx answer accepts a batch only with this content type (a proxy's "
                        "HTML login page does not). * or empty: any answer, an empty 204 included.",
                        "schema": {"type": ["string", "null"], "default": "application/json"},
                    },
                    "expected_json_keys": {
                        "label": "Expected JSON keys",
                        "description": "Comma-separated keys the accepting answer's JSON object must hold, "
                        "e.g. id, status. Empty: any JSON.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "verify_path": {
                        "label": "Verification path",
                        "description": "A path of the API that checks signatures (e.g. /verify): the Test "
                        "button sends it a signed GET and reports whether the secret was accepted. "
                        "Empty: Test only checks that the URL answers.",
                        "schema": {"type": ["string", "null"]},
                    },
                },
            },
        ],
    }

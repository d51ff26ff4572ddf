"""
Pytest fixtures: real SFTP servers on 127.0.0.1 and Airflow connections pointing at them.

Enable them in a ``conftest.py`` with ``pytest_plugins = ["airflow_outamation.testing.pytest_plugin"]``.

- ``sftp_server``: parametrised over the four server kinds of the test bed, one of each per test
  session: the in-process asyncssh server, OpenSSH's sshd, ProFTPD's ``mod_sftp`` and ``rclone serve
  sftp`` (whose rename replaces an existing target); ``asyncssh_server``, ``openssh_server``,
  ``proftpd_server`` and ``rclone_server`` give one kind.
- ``make_sftp_server``: a fresh server of a given kind for a test that restarts or breaks it.
- ``sftp_base``: a new empty directory on ``sftp_server`` for one test (its SFTP path).
- ``sftp_conn_id``: an Airflow ``sftp`` connection (``AIRFLOW_CONN_<ID>``) for ``sftp_server``,
  with the server's host key set so that it is verified.
- ``document_api_receiver``: a fresh local document API (``DocumentApiReceiver``) for one test.
- ``document_api_conn_id``: an ``outamation_document_api`` connection to it with a short backoff
  (``DOC_AI_API_URL`` unset for the test).
- ``jump_host_route``: a target OpenSSH sshd reachable only through a jump sshd (``JumpHostRoute``,
  both in a private network namespace; root only), one per test session.
- ``smtp_server``: a fresh local SMTP server (``SmtpTestServer``, aiosmtpd) for one test;
  ``smtp_conn_id``: the Airflow ``smtp`` connection ``smtp_default`` to it.

A server kind whose Debian package is missing (``openssh-server``, ``proftpd-core`` +
``proftpd-mod-crypto``, ``rclone``) is skipped, except when ``CI=true``: there its tests fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from airflow_outamation.testing.asyncssh_server import AsyncsshSftpServer
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.jump_host import JumpHostRoute
from airflow_outamation.testing.netns import namespaces_available
from airflow_outamation.testing.openssh_server import OpenSshServer, sshd_available
from airflow_outamation.testing.proftpd_server import ProftpdServer, proftpd_available
from airflow_outamation.testing.rclone_server import RcloneServer, rclone_available
from airflow_outamation.testing.server_base import SftpTestServer
from airflow_outamation.testing.smtp_server import SmtpTestServer

#: Each server kind: how to create one, whether it is installed, and the Debian packages it needs.
SERVERS: dict[str, tuple[Callable[[], SftpTestServer], Callable[[], bool], str]] = {
    "asyncssh": (AsyncsshSftpServer, lambda: True, ""),
    "openssh": (OpenSshServer, sshd_available, "openssh-server"),
    "proftpd": (ProftpdServer, proftpd_available, "proftpd-core proftpd-mod-crypto"),
    "rclone": (RcloneServer, rclone_available, "rclone"),
}
SERVER_KINDS = tuple(SERVERS)


def _require(kind: str) -> None:
    _, available, packages = SERVERS[kind]
    if not available():
        _unavailable(f"the {kind} SFTP server is not installed (apt-get install {packages})")


def _unavailable(message: str) -> None:
    """Skip the test, or fail it when ``CI=true`` (there every test must run)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true requires every test bed's tests to run")
    pytest.skip(message)


def new_sftp_server(kind: str) -> SftpTestServer:
    """Create and start a server of ``kind`` (one of :data:`SERVER_KINDS`)."""
    if kind not in SERVERS:
        raise ValueError(f"unknown SFTP server kind {kind!r}; expected one of {SERVER_KINDS}")
    _require(kind)
    return SERVERS[kind][0]().start()


def set_airflow_connection(
    monkeypatch: pytest.MonkeyPatch, conn_id: str, server: SftpTestServer, **kwargs: object
) -> str:
    """Expose ``server`` as the Airflow connection ``conn_id`` through ``AIRFLOW_CONN_<ID>``."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", server.connection_json(**kwargs))
    return conn_id


@pytest.fixture(scope="session")
def asyncssh_server() -> Iterator[SftpTestServer]:
    server = new_sftp_server("asyncssh")
    yield server
    server.close()


@pytest.fixture(scope="session")
def openssh_server() -> Iterator[SftpTestServer]:
    server = new_sftp_server("openssh")
    yield server
    server.close()


@pytest.fixture(scope="session")
def proftpd_server() -> Iterator[SftpTestServer]:
    server = new_sftp_server("proftpd")
    yield server
    server.close()


@pytest.fixture(scope="session")
def rclone_server() -> Iterator[SftpTestServer]:
    server = new_sftp_server("rclone")
    yield server
    server.close()


@pytest.fixture(
    params=[
        pytest.param("asyncssh"),
        pytest.param("openssh", marks=pytest.mark.sshd),
        pytest.param("proftpd", marks=pytest.mark.proftpd),
        pytest.param("rclone", marks=pytest.mark.rclone),
    ],
)
def sftp_server(request: pytest.FixtureRequest) -> SftpTestServer:
    return request.getfixturevalue(f"{request.param}_server")


@pytest.fixture
def make_sftp_server() -> Iterator[Callable[[str], SftpTestServer]]:
    started: list[SftpTestServer] = []

    def make(kind: str) -> SftpTestServer:
        server = new_sftp_server(kind)
        started.append(server)
        return server

    yield make
    for server in started:
        server.close()


@pytest.fixture
def sftp_base(sftp_server: SftpTestServer) -> str:
    path = sftp_server.remote_path(f"t-{uuid.uuid4().hex[:10]}")
    sftp_server.makedirs(path)
    return path


@pytest.fixture
def sftp_conn_id(sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch) -> str:
    return set_airflow_connection(monkeypatch, f"outamation_test_{sftp_server.kind}", sftp_server)


@pytest.fixture(scope="session")
def jump_host_route() -> Iterator[JumpHostRoute]:
    _require("openssh")
    if not namespaces_available():
        _unavailable("a jump-host route needs network namespaces: run the tests as root with unshare")
    with JumpHostRoute() as route:
        yield route


@pytest.fixture
def document_api_receiver() -> Iterator[DocumentApiReceiver]:
    with DocumentApiReceiver() as receiver:
        yield receiver


@pytest.fixture
def document_api_conn_id(document_api_receiver: DocumentApiReceiver, monkeypatch: pytest.MonkeyPatch) -> str:
    conn_id = "outamation_test_document_api"
    monkeypatch.delenv("DOC_AI_API_URL", raising=False)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        document_api_receiver.connection_json(
            profile_code="test_profile", timeout=5, max_retries=3, backoff_initial=0.01, backoff_max=0.5
        ),
    )
    return conn_id


@pytest.fixture
def smtp_server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@pytest.fixture
def smtp_conn_id(smtp_server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_server.connection_json())
    return "smtp_default"

"""
Every private name of another package that this package relies on, checked in one place.

paramiko, asyncssh and the SFTP provider may rename or drop their private names in any release;
an upgrade that does fails here, loudly and by name, instead of deep in a hook at run time.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import asyncssh
import paramiko
import pytest
from airflow.providers.sftp.hooks import sftp as provider_sftp
from airflow.providers.sftp.hooks.sftp import SFTPHook, SFTPHookAsync
from airflow.providers.sftp.pools import sftp as provider_pool
from airflow.providers.sftp.pools.sftp import SFTPClientPool

from airflow_outamation.hooks.sftp import RECONNECTING_METHODS, PooledSFTPHook


def _parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


@pytest.mark.parametrize(
    ("owner", "name", "parameters"),
    [
        # claims.renames.pipelined_renames: paramiko's request pipelining
        (paramiko.SFTPClient, "_async_request", ["self", "fileobj", "t", "args"]),
        (paramiko.SFTPClient, "_read_response", ["self", "waitfor"]),
        (paramiko.SFTPClient, "_adjust_cwd", ["self", "path"]),
        # sftp_pool.TrackedSFTPClient: every byte of the SFTP channel goes through these two
        (paramiko.SFTPClient, "_write_all", ["self", "out"]),
        (paramiko.SFTPClient, "_read_all", ["self", "n"]),
        # sftp_async: the provider's pool, subclassed
        (SFTPClientPool, "_pre_init", ["self", "sftp_conn_id", "pool_size"]),
        (SFTPClientPool, "_ensure_initialized", ["self"]),
        (SFTPClientPool, "_get_loop_state", ["self"]),
        (SFTPClientPool, "_release_pair", ["self", "pair", "state", "faulty"]),
        (SFTPClientPool, "_create_connection", ["self"]),
        # sftp_async.PooledSFTPHookAsync: the provider's async hook, subclassed
        (SFTPHookAsync, "_get_conn", ["self"]),
        (SFTPHookAsync, "_parse_extras", ["self", "conn"]),
        (SFTPHookAsync, "_should_use_known_hosts", ["self"]),
        (SFTPHookAsync, "_get_open_conn", ["self"]),
        # sftp_errors and sftp_async: which SFTP errors leave a connection usable
        (provider_pool, "_is_connection_faulty", ["exc"]),
    ],
)
def test_private_function_is_there_with_its_parameters(owner: Any, name: str, parameters: list[str]) -> None:
    assert callable(getattr(owner, name, None)), f"{owner.__name__}.{name} is gone"
    assert _parameters(getattr(owner, name)) == parameters


def test_provider_pool_class_attributes() -> None:
    assert isinstance(SFTPClientPool._instances, dict)
    assert hasattr(SFTPClientPool._lock, "__enter__")
    assert isinstance(SFTPClientPool._create_connection_max_retries, int)
    # The retry loop is where the subclass's _create_connection_max_retries = 0 takes effect.
    assert "_create_connection_max_retries" in inspect.getsource(SFTPClientPool._create_connection_with_retry)


def test_provider_pool_instance_attributes_set_by_pre_init() -> None:
    pool = object.__new__(SFTPClientPool)
    pool._pre_init("compat_check", 2)
    assert (pool.sftp_conn_id, pool.pool_size) == ("compat_check", 2)


def test_async_hook_connection_state_attributes() -> None:
    hook = SFTPHookAsync(sftp_conn_id="compat_check")
    assert hook.conn is None
    assert hook._conn_count == 0
    assert hook._conn_stack is None
    assert hasattr(hook._conn_lock, "__aenter__")
    assert (hook.host, hook.port, hook.username, hook.password) == (None, None, None, None)
    assert hasattr(hook, "known_hosts")
    assert hasattr(hook, "no_host_key_check")


def test_is_connection_faulty_keeps_status_errors_and_drops_lost_connections() -> None:
    assert not provider_pool._is_connection_faulty(asyncssh.SFTPNoSuchFile("gone"))
    assert provider_pool._is_connection_faulty(asyncssh.SFTPConnectionLost("lost"))


def test_paramiko_hands_pipelined_answers_to_async_response() -> None:
    """claims.renames._Responses receives the answers through this (private) callback name."""
    assert "_async_response(" in inspect.getsource(paramiko.SFTPClient._read_response)


def test_provider_connection_management_decorator_is_there() -> None:
    assert callable(provider_sftp.handle_connection_management)


def test_reconnecting_methods_are_the_providers_connection_opening_methods() -> None:
    """Every public SFTPHook method that opens a connection per call gets the retry-once, and no other."""
    opening = {
        name
        for name, member in vars(SFTPHook).items()
        if not name.startswith("_")
        and getattr(getattr(member, "__code__", None), "co_name", None)
        == "handle_connection_management_wrapper"
    }
    assert set(RECONNECTING_METHODS) == opening
    for name in RECONNECTING_METHODS:
        assert getattr(PooledSFTPHook, name).__wrapped__ is getattr(SFTPHook, name)


#: SSHHook attributes that PooledSFTPHook._connect reads to connect as SSHHook.get_conn does.
SSH_HOOK_ATTRIBUTES = (
    "remote_host",
    "port",
    "username",
    "password",
    "key_file",
    "pkey",
    "host_key",
    "no_host_key_check",
    "allow_host_key_change",
    "look_for_keys",
    "host_proxy",
    "host_proxy_cmd",
    "ciphers",
    "disabled_algorithms",
    "keepalive_interval",
    "conn_timeout",
    "banner_timeout",
    "auth_timeout",
    "conn",
)


def test_ssh_hook_attributes_the_pooled_hook_connects_with() -> None:
    hook = SFTPHook(ssh_conn_id=None, remote_host="localhost", username="compat")
    missing = [name for name in SSH_HOOK_ATTRIBUTES if not hasattr(hook, name)]
    assert missing == []


def test_paramiko_sftp_client_channel_and_transport_socket() -> None:
    """TrackedSFTPClient.is_alive reads the client's channel; _open_client sets TCP_NODELAY on the socket."""
    assert "self.sock = sock" in inspect.getsource(paramiko.SFTPClient.__init__)
    assert "self.sock = sock" in inspect.getsource(paramiko.Transport.__init__)
    assert callable(paramiko.SFTPClient.from_transport)

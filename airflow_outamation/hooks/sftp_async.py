"""
PooledSFTPHookAsync: asyncssh SFTP access through connections shared by every trigger in the process.

The pool is the SFTP provider's :class:`~airflow.providers.sftp.pools.sftp.SFTPClientPool` (bounded
by a semaphore, LIFO idle queue, per-event-loop state, faulty connections dropped), subclassed to
key it by the connection's settings instead of its id alone, to check idle connections before
handing them out and to leave retries to the caller, who knows which errors are worth retrying.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import posixpath
import sys
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import astuple, dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

import asyncssh
from airflow.providers.common.compat.connection import get_async_connection
from airflow.providers.sftp.hooks.sftp import SFTPHookAsync
from airflow.providers.sftp.pools.sftp import SFTPClientPool, _is_connection_faulty
from paramiko.config import SSH_PORT

from airflow_outamation.exceptions import SFTPPathError
from airflow_outamation.hooks.credentials import SSHCredentials
from airflow_outamation.hooks.sftp_errors import (
    IS_A_DIRECTORY,
    SFTPLocation,
    beyond_jump_error,
    check_connection_type,
    check_route,
    jump_error,
    path_error,
    translate,
)
from airflow_outamation.hooks.ssh_logging import set_ssh_log_level
from airflow_outamation.name_text import NAME_ENCODING
from airflow_outamation.readiness import FileState, add_entries

if TYPE_CHECKING:
    from airflow.sdk import Connection

#: SSH connections one pool keeps per connection settings (and event loop).
DEFAULT_POOL_SIZE = 4
#: Seconds a connect or a single SFTP request may take before the connection counts as dead.
DEFAULT_TIMEOUT = 30.0
#: Ciphers in order of preference: AES runs on the CPU's AES instructions and moves ~2x the bytes per
#: second of asyncssh's default first choice, chacha20-poly1305 (benchmarks/README.md).
PREFERRED_CIPHERS = (
    "aes128-ctr",
    "aes256-ctr",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
)
#: SFTP read or write requests in flight per transfer (each up to the server's limit, ~255 KiB on OpenSSH).
TRANSFER_REQUESTS = 16
#: Bytes one checksum read asks for (in parallel requests): the most of a file held in memory at once.
CHECKSUM_CHUNK = 4 * 1024 * 1024

SFTPPair = tuple[asyncssh.SSHClientConnection, asyncssh.SFTPClient]


T = TypeVar("T")


async def within(awaitable: Awaitable[T], timeout: float) -> T:
    """
    Await ``awaitable`` at most ``timeout`` seconds (then :class:`TimeoutError`), never losing a cancel.

    ``asyncio.wait_for`` before Python 3.12 returns the result when the task is cancelled in the
    same step as the result arrives, dropping the cancellation (CPython gh-86296): a watcher's poll
    loop cancelled by the triggerer then ran on. ``asyncio.timeout`` (3.11+) does not; on 3.10 only
    ``wait_for`` exists.
    """
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await awaitable
    return await asyncio.wait_for(awaitable, timeout)


def _is_connection_broken(exc: BaseException, ssh: asyncssh.SSHClientConnection) -> bool:
    """
    Whether an error raised while a pooled connection was in use means it cannot be reused.

    The provider's rule (``_is_connection_faulty``) drops the connection for any error that is not
    itself an SFTP status error, so an inherited method that turns "no such file" into another
    exception (``SFTPHookAsync.get_mod_time`` raises ``AirflowException``) cost one new SSH
    connection per call. Here the error's cause chain decides, and a closed connection is broken;
    a name that cannot be encoded or decoded never breaks one.

    :param exc: the error raised inside the pooled connection's block
    :param ssh: the pooled SSH connection
    """
    if ssh.is_closed():
        return True
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, asyncssh.SFTPError):
            return _is_connection_faulty(link)
        if isinstance(link, UnicodeError):  # a name that cannot be encoded: nothing was sent
            return False
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return True


@dataclass(frozen=True)
class SSHOverrides:
    """
    Settings that win over the Airflow connection's, e.g. a :class:`PooledSFTPHook`'s resolved ones.

    :param host: the server's host
    :param port: the server's port
    :param username: the login
    :param credentials: login, password and key (replace the connection's)
    :param no_host_key_check: skip host key verification (``True``) or enforce it (``False``)
    :param ciphers: ciphers in order of preference (otherwise the connection's ``ciphers`` extra,
        then :data:`PREFERRED_CIPHERS`)
    :param proxy_command: a command whose standard input and output reach the server (otherwise the
        connection's ``proxy_command`` extra)
    """

    host: str | None = None
    port: int | None = None
    username: str | None = None
    credentials: SSHCredentials | None = None
    no_host_key_check: bool | None = None
    ciphers: tuple[str, ...] | None = None
    proxy_command: str | None = None


class _PoolKey(NamedTuple):
    """Which pool a connection belongs to: its id and every setting that shapes the SSH session."""

    conn_id: str
    settings_digest: str


class _SettingsKeyedSFTPClientPool(SFTPClientPool):
    """The provider's pool, one per connection settings, with a liveness check on checkout."""

    _instances: dict[_PoolKey, _SettingsKeyedSFTPClientPool] = {}  # type: ignore[assignment]
    # The caller (the trigger) retries transient failures with backoff and must see permanent
    # ones (wrong password, unknown host key) at once, not after the stock pool's retries.
    _create_connection_max_retries = 0
    timeout: float
    overrides: SSHOverrides

    def __new__(
        cls, key: _PoolKey, pool_size: int, timeout: float, overrides: SSHOverrides
    ) -> _SettingsKeyedSFTPClientPool:
        with cls._lock:
            pool = cls._instances.get(key)
            if pool is None:
                pool = object.__new__(cls)
                pool._pre_init(key.conn_id, pool_size)
                pool.timeout = timeout
                pool.overrides = overrides  # part of the key's digest: the same for every user
                cls._instances[key] = pool
            return pool

    def __init__(self, key: _PoolKey, pool_size: int, timeout: float, overrides: SSHOverrides) -> None:
        super().__init__(key.conn_id, pool_size)

    @classmethod
    def retire_others(cls, key: _PoolKey) -> list[_SettingsKeyedSFTPClientPool]:
        """Forget the pools of ``key.conn_id`` made for older settings and return them for closing."""
        with cls._lock:
            stale = [other for other in cls._instances if other.conn_id == key.conn_id and other != key]
            return [cls._instances.pop(other) for other in stale]

    @classmethod
    def forget_all(cls) -> list[_SettingsKeyedSFTPClientPool]:
        """Forget every pool and return them for closing."""
        with cls._lock:
            pools = list(cls._instances.values())
            cls._instances.clear()
            return pools

    async def _create_connection(self) -> SFTPPair:
        hook = PooledSFTPHookAsync(self.sftp_conn_id, overrides=self.overrides)
        ssh = await within(hook._get_conn(), self.timeout)
        try:
            sftp = await within(ssh.start_sftp_client(path_errors=NAME_ENCODING[1]), self.timeout)
        except BaseException:
            ssh.close()
            raise
        self.log.info("Opened a pooled SFTP connection for %r", self.sftp_conn_id)
        return ssh, sftp

    @asynccontextmanager
    async def get_sftp_client(self) -> AsyncIterator[asyncssh.SFTPClient]:
        """A pooled SFTP client for the block, kept after errors :func:`_is_connection_broken` forgives."""
        await self._ensure_initialized()
        state = self._get_loop_state()
        pair = await self.acquire()
        try:
            yield pair[1]
        except BaseException as exc:
            faulty = not isinstance(exc, Exception) or _is_connection_broken(exc, pair[0])
            if faulty:
                self.log.warning("Dropping faulty connection for %r: %s", self.sftp_conn_id, exc)
            await self._release_pair(pair, state, faulty=faulty)
            raise
        await self._release_pair(pair, state, faulty=False)

    async def acquire(self) -> SFTPPair:
        """Take an idle connection (dropping any the server closed meanwhile) or open a new one."""
        pair: SFTPPair = await super().acquire()
        while pair[0].is_closed():
            self.log.info("Dropping a pooled SFTP connection to %r that was closed", self.sftp_conn_id)
            await self._release_pair(pair, self._get_loop_state(), faulty=True)
            pair = await super().acquire()
        return pair


def _settings_digest(conn: Connection, overrides: SSHOverrides) -> str:
    """A digest of everything in the connection and the overrides that shapes the SSH session."""
    fields = (conn.conn_type, conn.host, conn.port, conn.login, conn.password, conn.extra, astuple(overrides))
    return hashlib.sha256(repr(fields).encode()).hexdigest()


def _first(*values: Any) -> Any:
    """The first value that is not ``None``."""
    return next((value for value in values if value is not None), None)


def _file_state(attrs: asyncssh.SFTPAttrs) -> FileState:
    return FileState(
        size=attrs.size or 0,
        mtime=float(attrs.mtime or 0),
        is_regular=attrs.type == asyncssh.FILEXFER_TYPE_REGULAR,
    )


def _entries(names: Sequence[asyncssh.SFTPName]) -> list[tuple[str, FileState, bool]]:
    """A folder's entries as :func:`~airflow_outamation.readiness.add_entries` takes them (their own type)."""
    return [
        (name, _file_state(entry.attrs), entry.attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY)
        for entry in names
        if (name := os.fsdecode(entry.filename)) not in (".", "..")
    ]


class PooledSFTPHookAsync(SFTPHookAsync):
    """
    Asyncio SFTP hook whose connections come from a process-wide pool shared by all its instances.

    Every inherited :class:`SFTPHookAsync` method runs on a pooled connection. This hook's own
    methods raise :class:`~airflow_outamation.exceptions.SFTPConnectError` for transient failures
    (refused, dropped, timed out: worth retrying) and ``SFTPAuthenticationError``,
    ``SFTPHostKeyError``, ``SFTPPathError`` or ``SFTPConnectionTypeError`` (the connection is not
    an SFTP connection with a host) for permanent ones, naming user@host:port, connection and path.

    :param sftp_conn_id: Airflow ``sftp`` connection; its host key is verified (``host_key`` or
        ``known_hosts`` extra) unless it sets ``no_host_key_check``
    :param pool_size: most SSH connections open at once for this connection (first user wins)
    :param timeout: seconds a connect or one SFTP request may take
    :param overrides: settings that win over the connection's (the sync hook's, for its transfers)
    """

    def __init__(
        self,
        sftp_conn_id: str = SFTPHookAsync.default_conn_name,
        pool_size: int = DEFAULT_POOL_SIZE,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        overrides: SSHOverrides | None = None,
    ) -> None:
        set_ssh_log_level()
        self.overrides = overrides or SSHOverrides()
        super().__init__(
            sftp_conn_id=sftp_conn_id,
            host=self.overrides.host,
            port=self.overrides.port,
            username=self.overrides.username,
            no_host_key_check=self.overrides.no_host_key_check,
        )
        self.pool_size = pool_size
        self.timeout = timeout
        self.location = SFTPLocation(None, None, None, sftp_conn_id)

    @property
    def address(self) -> str:
        """``user@host:port`` of the server once the connection was read, for messages."""
        return self.location.address

    async def _get_conn(self) -> asyncssh.SSHClientConnection:
        """
        Connect as the provider's hook does, with :class:`SSHCredentials` and :attr:`overrides`.

        The provider's ``_get_conn`` passes a fixed set of options to ``asyncssh.connect``, so it is
        rebuilt here: host key checks from the provider's parsing of the extras, login, password
        and unlocked key from the same resolution the sync hook uses, ciphers from the overrides,
        the connection's ``ciphers`` extra or :data:`PREFERRED_CIPHERS`; the route through the
        ``jump_host`` extra's connection (its own credentials and host key checks) or a proxy command.
        """
        conn = await get_async_connection(self.sftp_conn_id)
        check_connection_type(self.sftp_conn_id, conn.conn_type, _first(self.host, conn.host))
        jump_host = check_route(self.sftp_conn_id, conn.extra_dejson)
        self.location = self._location(conn)
        self._parse_extras(conn)
        credentials = self.overrides.credentials or SSHCredentials.from_connection(
            conn.login, conn.password, conn.extra_dejson
        )
        config: dict[str, Any] = {
            "host": _first(self.host, conn.host),
            "port": _first(self.port, conn.port, SSH_PORT),
            "username": _first(self.username, credentials.username),
            "password": _first(self.password, credentials.password),
            "encryption_algs": self.overrides.ciphers
            or conn.extra_dejson.get("ciphers")
            or PREFERRED_CIPHERS,
        }
        key = credentials.load_key()
        if key is not None:
            config["client_keys"] = [key]
        if self.known_hosts and self.known_hosts.lower() == "none":
            config["known_hosts"] = None
        elif self.known_hosts and self._should_use_known_hosts():
            config["known_hosts"] = self.known_hosts
        if jump_host is None:
            proxy_command = _first(self.overrides.proxy_command, conn.extra_dejson.get("proxy_command"))
            if proxy_command:
                config["proxy_command"] = proxy_command
            return await asyncssh.connect(**config)
        jump = await self._connect_jump(jump_host)
        try:
            ssh = await asyncssh.connect(tunnel=jump, **config)
        except asyncssh.ChannelOpenError as exc:
            jump.close()
            raise beyond_jump_error(exc, jump_host, config["host"], config["port"]) from exc
        except BaseException:
            jump.close()
            raise
        ssh.set_tunnel(jump)  # closing the connection closes the jump host's too
        return ssh

    async def _connect_jump(self, jump_host: str) -> asyncssh.SSHClientConnection:
        """Connect to the jump host with its own connection's credentials and host key checks."""
        jump = PooledSFTPHookAsync(jump_host, timeout=self.timeout)
        try:
            return await within(jump._get_conn(), self.timeout)
        except (asyncssh.Error, OSError, asyncio.TimeoutError) as exc:
            raise jump_error(exc, jump.location, self.location) from exc

    def _location(self, conn: Connection) -> SFTPLocation:
        """The server this hook reaches with ``conn`` (and its overrides), as errors name it."""
        return SFTPLocation(
            _first(self.username, conn.login),
            _first(self.host, conn.host),
            _first(self.port, conn.port, SSH_PORT),
            self.sftp_conn_id,
        )

    async def _get_pool(self) -> _SettingsKeyedSFTPClientPool:
        """The pool for the connection's current settings; pools of edited settings get closed."""
        conn = await get_async_connection(self.sftp_conn_id)
        check_connection_type(self.sftp_conn_id, conn.conn_type, _first(self.host, conn.host))
        self.location = self._location(conn)
        key = _PoolKey(self.sftp_conn_id, _settings_digest(conn, self.overrides))
        for stale in _SettingsKeyedSFTPClientPool.retire_others(key):
            self.log.info("Connection %r was edited; closing its old pooled connections", self.sftp_conn_id)
            await stale.close()
        return _SettingsKeyedSFTPClientPool(key, self.pool_size, self.timeout, self.overrides)

    @asynccontextmanager
    async def get_managed_conn(self) -> AsyncGenerator[asyncssh.SFTPClient]:
        """
        A pooled SFTP client, shared by nested uses on this hook and returned by the last one.

        :raises SFTPConnectError: the server cannot be reached, timed out or the connection went away
        """
        async with self._conn_lock:
            if self.conn is None:
                stack = AsyncExitStack()
                pool = await self._get_pool()
                self.conn = await stack.enter_async_context(pool.get_sftp_client())
                self._conn_stack = stack
            self._conn_count += 1
            sftp = self._get_open_conn()
        error: BaseException | None = None
        try:
            yield sftp
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._conn_count -= 1
            if self._conn_count == 0:
                open_stack, self._conn_stack, self.conn = self._conn_stack, None, None
                if open_stack is not None:
                    # The pool decides from the error whether the connection is still good.
                    await open_stack.__aexit__(type(error) if error else None, error, None)

    @asynccontextmanager
    async def _client_for(self, path: str) -> AsyncIterator[asyncssh.SFTPClient]:
        """A pooled client; asyncssh and socket errors leave as this package's exceptions."""
        try:
            async with self.get_managed_conn() as sftp:
                yield sftp
        except (asyncssh.Error, OSError, asyncio.TimeoutError) as exc:
            raise translate(exc, self.location, path, self.timeout) from exc

    async def list_directory_states(self, directory: str, recursive: bool = False) -> dict[str, FileState]:
        """
        Read a directory once, with attributes: entry (relative path) -> size, mtime, whether a file.

        :param directory: path of the remote directory
        :param recursive: read its subfolders too, each level's at once
            (:func:`~airflow_outamation.readiness.add_entries`: entries keyed ``sub/x.pdf``)
        :raises SFTPPathError: ``directory`` is missing or not permitted
        :raises SFTPConnectError: the server cannot be reached, timed out or the connection went away
        """
        listing: dict[str, FileState] = {}
        async with self._client_for(directory) as sftp:
            level = {"": await within(sftp.readdir(directory), self.timeout)}
            depth = 0
            while level:
                subfolders = [
                    subfolder
                    for folder, entries in level.items()
                    for subfolder in add_entries(listing, folder, _entries(entries), depth)
                ]
                subfolders = subfolders if recursive else []
                read = await asyncio.gather(
                    *(self._read_subfolder(sftp, posixpath.join(directory, sub)) for sub in subfolders)
                )
                level = {
                    sub: entries for sub, entries in zip(subfolders, read, strict=True) if entries is not None
                }
                depth += 1
        return listing

    async def _read_subfolder(
        self, sftp: asyncssh.SFTPClient, path: str
    ) -> Sequence[asyncssh.SFTPName] | None:
        """A subfolder's entries; ``None`` when it went away or is not permitted (then it is skipped)."""
        try:
            return await within(sftp.readdir(path), self.timeout)
        except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPPermissionDenied):
            return None

    async def stat_file(self, path: str) -> FileState:
        """
        Size, mtime and type of one remote path (symbolic links followed).

        :param path: path of the remote file
        :raises SFTPPathError: ``path`` is missing or not permitted
        :raises SFTPConnectError: the server cannot be reached, timed out or the connection went away
        """
        async with self._client_for(path) as sftp:
            return _file_state(await within(sftp.stat(path), self.timeout))

    async def upload_file(self, local_path: str, remote_path: str, overwrite: bool = False) -> None:
        """
        Upload a local file under a temporary name, then rename it to ``remote_path``.

        Streamed with :data:`TRANSFER_REQUESTS` parallel writes. No reader ever sees a partial file:
        the temporary name is a dotfile ending in ``.part``. Missing directories are created.

        :param local_path: the local file
        :param remote_path: the remote file to create
        :param overwrite: replace an existing ``remote_path`` instead of failing
        :raises SFTPPathError: the local file is missing, or ``remote_path`` exists and not ``overwrite``
        :raises SFTPConnectError: the server cannot be reached, timed out or the connection went away
        """
        if not os.path.isfile(local_path):
            raise SFTPPathError(f"local file to upload does not exist: {local_path}")
        remote_dir, name = posixpath.split(remote_path)
        temporary = posixpath.join(remote_dir, f".{name}.{uuid.uuid4().hex[:8]}.part")
        refusal = None
        async with self._client_for(remote_path) as sftp:
            await sftp.makedirs(remote_dir, exist_ok=True)
            if not overwrite and await sftp.exists(remote_path):
                refusal = f"refusing to overwrite {remote_path} on {self.location} (overwrite=False)"
            else:
                try:
                    await sftp.put(local_path, temporary, max_requests=TRANSFER_REQUESTS)
                    # A plain SFTP rename never replaces a file; posix-rename does.
                    await (sftp.posix_rename if overwrite else sftp.rename)(temporary, remote_path)
                except BaseException:
                    with suppress(asyncssh.Error, OSError):
                        await sftp.remove(temporary)
                    if overwrite or not await sftp.exists(remote_path):
                        raise
                    refusal = f"{remote_path} appeared on {self.location} during the upload"
        if refusal:  # raised outside the pool's context: the connection is fine
            raise SFTPPathError(refusal)

    async def get_file(self, remote_path: str, local_path: str) -> None:
        """
        Download a remote file, streamed with :data:`TRANSFER_REQUESTS` parallel reads.

        :param remote_path: the remote file (not a directory)
        :param local_path: the local file to write (replaced if it exists)
        :raises SFTPPathError: ``remote_path`` is missing, a directory or not permitted
        :raises SFTPConnectError: the server cannot be reached, timed out or the connection went away
        """
        async with self._client_for(remote_path) as sftp:
            is_directory = await sftp.isdir(remote_path)
            if not is_directory:
                await sftp.get(remote_path, local_path, max_requests=TRANSFER_REQUESTS)
        if is_directory:  # raised outside the pool's context: the connection is fine
            raise path_error(IS_A_DIRECTORY, remote_path, self.location)

    async def sha256_files(self, paths: Sequence[str]) -> list[str]:
        """
        The SHA-256 (hex) of each remote file, streamed: at most :data:`CHECKSUM_CHUNK` bytes held at once.

        :param paths: the remote files
        :raises SFTPPathError: a file is missing, a directory or not permitted
        :raises SFTPConnectError: the server cannot be reached, timed out or the connection went away
        """
        digests = []
        for path in paths:
            digest = hashlib.sha256()
            async with (
                self._client_for(path) as sftp,
                sftp.open(path, "rb", max_requests=TRANSFER_REQUESTS) as remote,
            ):
                while chunk := await within(remote.read(CHECKSUM_CHUNK), self.timeout):
                    digest.update(cast(bytes, chunk))  # "rb": bytes
            digests.append(digest.hexdigest())
        return digests

    @classmethod
    async def close_all(cls) -> None:
        """Close every pooled connection of the running event loop and forget the pools."""
        for pool in _SettingsKeyedSFTPClientPool.forget_all():
            await pool.close()

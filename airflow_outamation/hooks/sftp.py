"""
PooledSFTPHook: Airflow's SFTPHook with pooled, self-healing connections, readiness and safe transfers.

The stock :class:`~airflow.providers.sftp.hooks.sftp.SFTPHook` opens a new SSH connection (about
200 ms) for every method call; this hook takes one from a process-wide pool keyed by the
connection's id and settings, replaces connections that went stale, and retries an operation once
when its connection died under it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import posixpath
import shutil
import socket
import stat
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Generator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import paramiko
from airflow.providers.sftp.hooks.sftp import SFTPHook
from paramiko.config import SSH_PORT

from airflow_outamation import claims, readiness
from airflow_outamation.claims import Claim, ClaimedFile
from airflow_outamation.claims.names import DEFAULT_NAME_ENCODING
from airflow_outamation.exceptions import SFTPConnectError, SFTPPathError
from airflow_outamation.hooks.background_loop import BackgroundLoop
from airflow_outamation.hooks.credentials import SSHCredentials
from airflow_outamation.hooks.sftp_async import PooledSFTPHookAsync, SSHOverrides
from airflow_outamation.hooks.sftp_errors import (
    IS_A_DIRECTORY,
    NOT_A_DIRECTORY,
    SFTPLocation,
    beyond_jump_error,
    check_connection_type,
    check_route,
    is_connection_lost,
    jump_error,
    path_error,
    translate,
)
from airflow_outamation.hooks.sftp_pool import (
    DEFAULT_CHECKOUT_TIMEOUT,
    DEFAULT_POOL_SIZE,
    POOLS,
    ClientPool,
    PooledClient,
    TrackedSFTPClient,
    decode_name,
)
from airflow_outamation.hooks.ssh_logging import set_ssh_log_level
from airflow_outamation.name_text import printable
from airflow_outamation.readiness import FileState, Listing, ReadinessSettings, RemoteFile
from airflow_outamation.sftp_paths import resolve
from airflow_outamation.sftp_pipelining import pipelined_listdirs_attr

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

#: What paramiko's AuthenticationException says when the server closed the connection before answering.
PARAMIKO_LOST_IN_AUTH = "transport shut down or saw EOF"
#: The stock SFTPHook methods that open a connection per call (``@handle_connection_management``):
#: here they run on a pooled connection and are retried once when it went away.
RECONNECTING_METHODS = (
    "create_directory",
    "delete_directory",
    "delete_file",
    "describe_directory",
    "get_mod_time",
    "isdir",
    "isfile",
    "list_directory",
    "list_directory_with_attr",
    "mkdir",
    "path_exists",
    "retrieve_file",
    "store_directory",
    "store_file",
)

#: Runs the asyncssh bulk transfers of every hook in this process.
TRANSFER_LOOP = BackgroundLoop("outamation-sftp-transfers")


def _reconnect_once(func: F) -> F:
    """Run ``func``; if its pooled connection died under it, run it once more on a fresh one."""

    @functools.wraps(func)
    def wrapper(self: PooledSFTPHook, *args: Any, **kwargs: Any) -> Any:
        if self._held() is not None:
            return func(self, *args, **kwargs)
        try:
            return func(self, *args, **kwargs)
        except Exception as exc:
            if not is_connection_lost(exc):
                raise
            self.log.warning(
                "Connection to %s went away during %s (%s); retrying once on a new connection",
                self.address,
                func.__name__,
                type(exc).__name__,
            )
            return func(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _entry(attributes: paramiko.SFTPAttributes) -> tuple[str, FileState, bool]:
    """A listed entry as :func:`~airflow_outamation.readiness.add_entries` takes it (its own type)."""
    mode = attributes.st_mode or 0
    state = FileState(
        size=attributes.st_size or 0, mtime=float(attributes.st_mtime or 0), is_regular=stat.S_ISREG(mode)
    )
    return attributes.filename, state, stat.S_ISDIR(mode)


class _ThroughJumpSSHClient(paramiko.SSHClient):
    """An SSH client whose connection runs through a jump host's; closing it closes both."""

    def __init__(self, jump: paramiko.SSHClient) -> None:
        super().__init__()
        self.jump = jump

    def close(self) -> None:
        super().close()
        self.jump.close()


class PooledSFTPHook(SFTPHook):
    """
    Interact with SFTP through pooled connections that heal themselves.

    Works on Airflow's ``sftp`` connection type. Every inherited :class:`SFTPHook` method runs on a
    client from a process-wide pool (keyed by connection id and settings, so an edited connection
    gets new connections). A client whose transport died is replaced before it is handed out, and
    an operation that fails because the connection went away is retried once on a new connection;
    other failures (no such file, permission denied) are not retried. Compression is off unless the
    connection's extra sets ``"compress": "true"`` (PDFs do not compress; SSH compression triples
    the transfer time). One hook instance belongs to one thread; the pool is shared.

    Besides what each method names, any call that connects raises ``SFTPAuthenticationError``
    (credentials rejected), ``SFTPHostKeyError`` (host key not trusted) or
    ``SFTPPoolExhaustedError`` (no pooled connection free within ``pool_timeout``).

    :param ssh_conn_id: the :ref:`sftp connection id<howto/connection:sftp>`
    :param pool_size: most SSH connections open at once for this connection's settings
    :param pool_timeout: seconds to wait for a free pooled connection before failing
    :raises SFTPConnectionTypeError: the connection is not an ``sftp``/``ssh`` connection with a host
    """

    def __init__(
        self,
        ssh_conn_id: str | None = "sftp_default",
        *args: Any,
        pool_size: int = DEFAULT_POOL_SIZE,
        pool_timeout: float = DEFAULT_CHECKOUT_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        set_ssh_log_level()
        extra: dict[str, Any] = {}
        if ssh_conn_id:
            conn = self.get_connection(ssh_conn_id)
            check_connection_type(ssh_conn_id, conn.conn_type, kwargs.get("remote_host") or conn.host)
            extra = conn.extra_dejson
        self.jump_host: str | None = check_route(ssh_conn_id, extra)
        kwargs.setdefault("conn_retry_attempts", 1)
        if kwargs.get("host_proxy_cmd") is None:
            kwargs["host_proxy_cmd"] = extra.get("proxy_command")
        super().__init__(ssh_conn_id, *args, **kwargs)
        self.pool_size = pool_size
        self.pool_timeout = pool_timeout
        self.compress = str(extra.get("compress", "false")).lower() == "true"
        self.credentials = SSHCredentials.from_connection(
            self.username, self.password, {**extra, "key_file": self.key_file}
        )
        self._local = threading.local()
        self._lent: PooledClient | None = None
        self._private: PooledClient | None = None
        # Give get_conn()'s clients back when the hook is garbage-collected without close_conn().
        self._return_lent: weakref.finalize | None = None
        self._close_private: weakref.finalize | None = None

    @property
    def address(self) -> str:
        """``user@host:port`` of the server, for messages (never a secret)."""
        return self.location.address

    @property
    def location(self) -> SFTPLocation:
        """The server and connection, as errors name them."""
        return SFTPLocation(self.username, self.remote_host, self.port, self.ssh_conn_id)

    def _settings_digest(self) -> str:
        """A digest of every setting that shapes the SSH session (secrets included, never stored in clear)."""
        settings = (
            self.remote_host,
            self.port,
            self.username,
            self.password,
            self.key_file,
            self.credentials.passphrase,
            self.pkey.get_base64() if self.pkey else None,
            self.host_key.get_base64() if self.host_key else None,
            self.no_host_key_check,
            self.allow_host_key_change,
            self.look_for_keys,
            self.compress,
            self.host_proxy_cmd,
            self.jump_host,
            repr(self.ciphers),
            repr(self.disabled_algorithms),
            self.keepalive_interval,
            self.conn_timeout,
        )
        return hashlib.sha256(repr(settings).encode()).hexdigest()

    @property
    def pool(self) -> ClientPool:
        """The process-wide pool for this connection's current settings."""
        return POOLS.get(str(self.ssh_conn_id), self._settings_digest(), self.pool_size)

    @classmethod
    def close_all(cls) -> None:
        """Close every pooled connection of every connection id in this process (transfers' too)."""
        POOLS.close_all()
        if TRANSFER_LOOP.started:
            TRANSFER_LOOP.run(PooledSFTPHookAsync.close_all())

    def pool_stats(self) -> dict[str, int]:
        """Counters of this connection's pool: ``opened``, ``reused``, ``replaced``, ``in_use``, ``idle``."""
        return self.pool.stats.as_dict()

    def _connect(self) -> paramiko.SSHClient:
        """
        Connect as ``SSHHook.get_conn`` does (host key checks, proxy, algorithms), with :attr:`credentials`.

        ``SSHHook.get_conn`` strips the password and passes ``key_file`` without its passphrase;
        here the password goes as typed and the key comes unlocked, as in the async hook.
        """
        ssh = _ThroughJumpSSHClient(self._connect_jump()) if self.jump_host else paramiko.SSHClient()
        try:
            self._connect_client(ssh)
        except BaseException:
            ssh.close()
            raise
        transport = ssh.get_transport()
        assert transport is not None
        if isinstance(transport.sock, socket.socket):  # through a jump host it is an SSH channel
            transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.keepalive_interval:
            transport.set_keepalive(self.keepalive_interval)
        if self.ciphers:
            transport.get_security_options().ciphers = self.ciphers
        return ssh

    def _connect_client(self, ssh: paramiko.SSHClient) -> None:
        """Check host keys as configured and connect ``ssh``, through the jump host or proxy if any."""
        if self.allow_host_key_change:
            self.log.warning("Remote Identification Change is not verified for %s", self.address)
            ssh.set_missing_host_key_policy(paramiko.MissingHostKeyPolicy)
        else:
            ssh.load_system_host_keys()
        if self.no_host_key_check:
            self.log.warning("No Host Key Verification. This won't protect against Man-In-The-Middle attacks")
            ssh.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # nosec B507
        elif self.host_key is not None:
            name = self.remote_host if self.port == SSH_PORT else f"[{self.remote_host}]:{self.port}"
            ssh.get_host_keys().add(name, self.host_key.get_name(), self.host_key)
        ssh.connect(
            hostname=self.remote_host,
            port=self.port or SSH_PORT,
            username=self.credentials.username,
            password=self.credentials.password,
            pkey=self.credentials.paramiko_key(),
            look_for_keys=self.look_for_keys,
            timeout=self.conn_timeout,
            banner_timeout=self.banner_timeout,
            auth_timeout=self.auth_timeout,
            compress=self.compress,
            sock=self._jump_channel(ssh.jump) if isinstance(ssh, _ThroughJumpSSHClient) else self.host_proxy,
            disabled_algorithms=self.disabled_algorithms or None,
        )

    def _connect_jump(self) -> paramiko.SSHClient:
        """Connect to :attr:`jump_host` with that connection's own credentials and host key checks."""
        jump = PooledSFTPHook(self.jump_host, pool_size=1, pool_timeout=self.pool_timeout)
        try:
            return jump._connect()
        except Exception as exc:
            raise jump_error(exc, jump.location) from None

    def _jump_channel(self, jump: paramiko.SSHClient) -> paramiko.Channel:
        """A ``direct-tcpip`` channel from the jump host to this hook's server, to carry its SSH session."""
        transport = jump.get_transport()
        assert transport is not None
        try:
            return transport.open_channel(
                "direct-tcpip", (self.remote_host, self.port or SSH_PORT), ("127.0.0.1", 0), self.conn_timeout
            )
        except Exception as exc:
            raise beyond_jump_error(exc, str(self.jump_host), self.remote_host, self.port) from None

    def _open_client(self) -> PooledClient:
        """
        Open a new SSH connection and SFTP session; connection failures become clear exceptions.

        paramiko reports a connection the server closed before answering the credentials (sshd
        restarting) as an ``AuthenticationException``: that case is tried once more, so an outage
        does not fail a task for good as wrong credentials; a second refusal is one.
        """
        try:
            return self._open_client_once()
        except paramiko.AuthenticationException as exc:
            if PARAMIKO_LOST_IN_AUTH not in str(exc):
                raise translate(exc, self.location, timeout=self.conn_timeout) from None
            self.log.warning("%s closed the connection while authenticating; connecting again", self.location)
        except Exception as exc:
            raise translate(exc, self.location, timeout=self.conn_timeout) from None
        time.sleep(1)
        try:
            return self._open_client_once()
        except Exception as exc:
            raise translate(exc, self.location, timeout=self.conn_timeout) from None

    def _open_client_once(self) -> PooledClient:
        """One attempt of :meth:`_open_client`, raising paramiko's or the socket's error."""
        ssh = self._connect()
        try:
            sftp = TrackedSFTPClient.from_transport(ssh.get_transport())  # type: ignore[arg-type]
            if sftp is None:
                raise paramiko.SSHException("the server refused to open an SFTP session")
            return PooledClient(ssh, sftp)
        except Exception:
            ssh.close()
            raise

    def _held(self) -> PooledClient | None:
        return getattr(self._local, "client", None) or self._lent

    def _check_not_lost(self, client: PooledClient, lost_before: Exception | None) -> None:
        """Raise if the connection failed during a block that ended normally (the error was swallowed)."""
        lost = client.sftp.lost
        if lost is not None and lost is not lost_before:
            raise SFTPConnectError(
                f"lost the connection to {self.location} during the call ({type(lost).__name__}); "
                "its result was discarded"
            ) from lost

    @contextmanager
    def get_managed_conn(self) -> Generator[paramiko.SFTPClient, None, None]:
        """
        A pooled SFTP client for the block; nested uses in one thread share it.

        A block during which the connection failed raises :class:`SFTPConnectError` even if the
        block swallowed the error, so that no answer read from a dead connection gets out.

        :raises SFTPConnectError: the server cannot be reached, or the connection failed in the block
        """
        held = self._held()
        if held is not None:
            lost_before = held.sftp.lost
            yield held.sftp
            self._check_not_lost(held, lost_before)
            return
        pool = self.pool
        client = pool.checkout(self._open_client, self.pool_timeout)
        self._local.client = client
        dead = False
        try:
            yield client.sftp
            self._check_not_lost(client, None)
        except BaseException as exc:
            dead = is_connection_lost(exc) or not client.is_alive()
            raise
        finally:
            self._local.client = None
            self.conn = None
            pool.checkin(client, dead=dead)

    def get_conn(self, pooled: bool = True) -> paramiko.SFTPClient:  # type: ignore[override]
        """
        Return an SFTP client: this hook's pooled one until :meth:`close_conn`, or a private one.

        A hook dropped without :meth:`close_conn` gives its pooled client back when it is
        garbage-collected; a private client lives as long as someone holds it (or until
        :meth:`close_conn`), so ``PooledSFTPHook(...).get_conn(pooled=False)`` works as a one-liner.

        :param pooled: ``False`` opens a private connection that no one else uses
        :raises SFTPConnectError: the server cannot be reached
        """
        if not pooled:
            if self._private is None or not self._private.is_alive():
                self._release_private()
                self._private = self._open_client()
                # Tied to the client, not to this hook: the SSH connection closes when the client goes.
                self._close_private = weakref.finalize(self._private.sftp, self._private.ssh.close)
            return self._private.sftp
        if self._lent is not None and not self._lent.is_alive():
            self._release_lent()
        if self._lent is None:
            pool = self.pool
            self._lent = pool.checkout(self._open_client, self.pool_timeout, lent=True)
            self._return_lent = weakref.finalize(self, pool.checkin, self._lent, lent=True)
        self.conn = self._lent.sftp
        return self.conn

    def _release_lent(self) -> None:
        if self._return_lent is not None:
            self._return_lent()
        self._lent = self._return_lent = None

    def _release_private(self) -> None:
        if self._close_private is not None:
            self._close_private()
        self._private = self._close_private = None

    def close_conn(self) -> None:
        """Give the client of :meth:`get_conn` back to the pool and close a private one."""
        self._release_lent()
        self._release_private()
        self.conn = None

    @contextmanager
    def _sftp(self, path: str) -> Generator[paramiko.SFTPClient, None, None]:
        """A pooled client; SFTP status errors on ``path`` leave as :class:`SFTPPathError`."""
        with self.get_managed_conn() as sftp:
            try:
                yield sftp
            except (FileNotFoundError, PermissionError) as exc:
                raise translate(exc, self.location, path) from None

    @_reconnect_once
    def list_states(self, directory: str, recursive: bool = False) -> dict[str, FileState]:
        """
        Read ``directory`` once, with attributes: entry (relative path) -> size, mtime, whether a file.

        :param directory: full path to the remote directory
        :param recursive: read its subfolders too, one pipelined step per level
            (:func:`~airflow_outamation.readiness.add_entries`: entries keyed ``sub/x.pdf``)
        :raises SFTPPathError: ``directory`` is missing, not a directory or not permitted
        :raises SFTPConnectError: the server cannot be reached or the connection went away (after one retry)
        """
        return self._list_states(directory, recursive)

    def _list_states(self, directory: str, recursive: bool = False) -> dict[str, FileState]:
        listing: dict[str, FileState] = {}
        with self._sftp(directory) as sftp:
            if not stat.S_ISDIR(sftp.stat(directory).st_mode or 0):
                raise path_error(NOT_A_DIRECTORY, directory, self.location)
            level = {"": sftp.listdir_attr(directory)}
            depth = 0
            while level:
                subfolders = [
                    subfolder
                    for folder, entries in level.items()
                    for subfolder in readiness.add_entries(listing, folder, map(_entry, entries), depth)
                ]
                paths = {posixpath.join(directory, sub): sub for sub in subfolders} if recursive else {}
                read = pipelined_listdirs_attr(sftp, list(paths), decode_name, skip_unreadable=True)
                level = {paths[path]: entries for path, entries in read.items()}
                depth += 1
        return listing

    @_reconnect_once
    def confine(self, path: str, root: str) -> str:
        """
        Check, as the server resolves paths, that ``path`` lies inside ``root``; return it resolved.

        :func:`~airflow_outamation.projects.confine_path` checks a run's folder as text: a folder
        inside the project that is a symbolic link to another project's passes it. Here the server
        resolves both (SFTP ``realpath``, links followed); folders still to be created are resolved
        from their nearest existing parent.

        :param path: the folder a run is to use
        :param root: the project's folder
        :return: ``path`` as the server resolves it
        :raises SFTPPathError: ``path`` resolves outside ``root``, or ``root`` is missing
        :raises SFTPConnectError: the server cannot be reached or the connection went away (after one retry)
        """
        with self._sftp(root) as sftp:
            resolved_root = resolve(sftp, root)
        with self._sftp(path) as sftp:
            resolved = resolve(sftp, path)
        if resolved != resolved_root and not resolved.startswith(resolved_root.rstrip("/") + "/"):
            raise SFTPPathError(
                f"{printable(path)} resolves to {printable(resolved)} on {self.location}, outside the "
                f"project's folder {printable(root)} ({printable(resolved_root)}): a symbolic link leads "
                "out of the project"
            )
        return resolved

    def _stat_file(self, path: str) -> FileState:
        with self._sftp(path) as sftp:
            attrs = sftp.stat(path)
        if stat.S_ISDIR(attrs.st_mode or 0):
            raise path_error(IS_A_DIRECTORY, path, self.location)
        return FileState(size=attrs.st_size or 0, mtime=float(attrs.st_mtime or 0))

    def _async_twin(self) -> PooledSFTPHookAsync:
        """The asyncssh hook for transfers, on this hook's resolved settings (constructor's included)."""
        overrides = SSHOverrides(
            host=self.remote_host,
            port=self.port,
            username=self.username,
            credentials=self.credentials,
            no_host_key_check=self.no_host_key_check,
            ciphers=tuple(self.ciphers) if self.ciphers else None,
            proxy_command=self.host_proxy_cmd,
        )
        return PooledSFTPHookAsync(
            self.ssh_conn_id or self.default_conn_name, pool_size=self.pool_size, overrides=overrides
        )

    @staticmethod
    def _transfer(coro: Coroutine[Any, Any, T]) -> T:
        """
        Run an asyncssh transfer of :class:`PooledSFTPHookAsync` on the process's transfer loop.

        Bulk bytes go through asyncssh: its parallel ~255 KiB requests run at about the speed of
        OpenSSH's ``sftp``, paramiko's 32 KiB ones at half of it (``benchmarks/README.md``).
        """
        return TRANSFER_LOOP.run(coro)

    @_reconnect_once
    def is_file_fully_uploaded(self, path: str, delay: float = 1.2) -> bool:
        """
        Whether a file kept its size and modification time for ``delay`` seconds.

        No connection is held while waiting.

        :param path: full path to the remote file
        :param delay: seconds between the two looks
        :raises SFTPPathError: ``path`` is missing, a directory or not permitted
        :raises SFTPConnectError: the server cannot be reached or the connection went away (after one retry)
        """
        before = self._stat_file(path)
        time.sleep(delay)
        try:
            after = self._stat_file(path)
        except SFTPPathError:
            return False
        return readiness.is_stable(before, after)

    @_reconnect_once
    def list_ready_files(
        self,
        directory: str,
        pattern: str | None = None,
        stability_delay: float | None = None,
        min_age: float | None = None,
        min_size: int | None = None,
        announced: Listing | None = None,
        settings: ReadinessSettings | None = None,
    ) -> list[RemoteFile]:
        """
        List the ready files of ``directory``: two listings ``stability_delay`` apart, one wait in all.

        See :mod:`airflow_outamation.readiness` for the rules (unchanged, matching ``pattern``
        case-insensitively, regular, no dotfile or temporary upload name, ``min_size``, ``min_age``).
        With ``announced`` (files a watcher found stable earlier, see
        :func:`~airflow_outamation.assets.announced_files`), the wait is skipped when every
        candidate of a first listing is an announced file, unchanged: those are ready at once.

        :param directory: full path to the remote directory
        :param pattern: glob the file names must match (overrides ``settings``)
        :param stability_delay: seconds between the two listings (overrides ``settings``)
        :param min_age: seconds since a file's last modification (overrides ``settings``)
        :param min_size: smallest size in bytes, 1 leaves out empty files (overrides ``settings``)
        :param announced: files already known stable (name -> size and mtime)
        :param settings: the readiness settings; default: the defaults
        :raises SFTPPathError: ``directory`` is missing, not a directory or not permitted
        :raises SFTPConnectError: the server cannot be reached or the connection went away (after one retry)
        """
        settings = ReadinessSettings.of(
            settings, pattern=pattern, stability_delay=stability_delay, min_age=min_age, min_size=min_size
        )
        listing = self._list_states(directory, settings.recursive)
        before: Listing
        if announced is not None and not readiness.unannounced(listing, announced, settings):
            before = announced  # the watcher's look, at least stability_delay before this one
        else:
            before = listing
            time.sleep(settings.stability_delay)
            listing = self._list_states(directory, settings.recursive)
        return readiness.ready_files(directory, before, listing, now=time.time(), settings=settings)

    @_reconnect_once
    def upload_to_folder(self, local_path: str, remote_dir: str, overwrite: bool = False) -> str:
        """
        Upload a local file into ``remote_dir`` under a temporary name, then rename it into place.

        No reader ever sees a partial file: the temporary name is a dotfile ending in ``.part``.
        Missing directories are created.

        :param local_path: the local file
        :param remote_dir: the remote directory to put it in
        :param overwrite: replace a file of the same name instead of failing
        :return: the remote path of the uploaded file
        :raises SFTPPathError: the local file is missing, or the target exists and not ``overwrite``
        :raises SFTPConnectError: the server cannot be reached or the connection went away (after one retry)
        """
        target = posixpath.join(remote_dir, os.path.basename(local_path))
        self._transfer(self._async_twin().upload_file(local_path, target, overwrite))
        return target

    @_reconnect_once
    def download_to_temp(self, remote_path: str) -> str:
        """
        Download a remote file into a new local temporary directory and return the local path.

        :param remote_path: full path to the remote file
        :raises SFTPPathError: ``remote_path`` is missing, a directory or not permitted
        :raises SFTPConnectError: the server cannot be reached or the connection went away (after one retry)
        """
        local_dir = tempfile.mkdtemp(prefix="outamation-")
        local_path = os.path.join(local_dir, posixpath.basename(remote_path))
        try:
            self._transfer(self._async_twin().get_file(remote_path, local_path))
        except BaseException:
            shutil.rmtree(local_dir, ignore_errors=True)
            raise
        return local_path

    @_reconnect_once
    def sha256_files(self, paths: Sequence[str]) -> list[str]:
        """
        The SHA-256 (hex) of each remote file, computed while streaming it (never held whole in memory).

        :param paths: full paths to the remote files
        :raises SFTPPathError: a file is missing, a directory or not permitted
        :raises SFTPConnectError: the server cannot be reached or the connection went away (after one retry)
        """
        return self._transfer(self._async_twin().sha256_files(paths))

    @_reconnect_once
    def remove_file(self, path: str) -> None:
        """
        Remove a remote file (not a directory).

        :param path: full path to the remote file
        :raises SFTPPathError: ``path`` is missing, a directory or not permitted
        :raises SFTPConnectError: the server cannot be reached or the connection went away (after one retry)
        """
        self._stat_file(path)
        with self._sftp(path) as sftp:
            sftp.remove(path)

    @_reconnect_once
    def claim(
        self,
        files: Sequence[RemoteFile | Mapping[str, Any] | str],
        in_progress_dir: str,
        manifest_id: str,
        name_encoding: str = DEFAULT_NAME_ENCODING,
    ) -> Claim:
        """
        Move files into ``in_progress_dir`` by atomic rename, file by file, exactly once, crash-safe.

        See :func:`airflow_outamation.claims.claim`; a retry on a new connection is safe because the
        claim resumes from its manifest.

        :param files: the ready files (``RemoteFile``, their dicts, or paths)
        :param in_progress_dir: the dated in-progress directory
        :param manifest_id: names the claim's manifest; the same id returns the same claim
        :param name_encoding: decodes a name that is not UTF-8 into its (UTF-8) name in ``in_progress_dir``
        :return: the claimed files and the skipped ones with their reasons
        :raises SFTPClaimError: the claim could not complete (every file is still in one place)
        :raises SFTPConnectError: the server cannot be reached or the connection went away (after one retry)
        """
        with self.get_managed_conn() as sftp:
            return claims.claim(sftp, files, in_progress_dir, manifest_id, name_encoding)

    def claim_files(
        self,
        files: Sequence[RemoteFile | Mapping[str, Any] | str],
        in_progress_dir: str,
        manifest_id: str,
        name_encoding: str = DEFAULT_NAME_ENCODING,
    ) -> list[ClaimedFile]:
        """
        Move files into ``in_progress_dir`` like :meth:`claim`; return the claimed ones, log the skipped ones.

        :param files: the ready files (``RemoteFile``, their dicts, or paths)
        :param in_progress_dir: the dated in-progress directory
        :param manifest_id: names the claim's manifest; the same id returns the same claim
        :param name_encoding: decodes a name that is not UTF-8 into its (UTF-8) name in ``in_progress_dir``
        :raises SFTPClaimError: the claim could not complete (every file is still in one place)
        :raises SFTPConnectError: the server cannot be reached or the connection went away (after one retry)
        """
        result = self.claim(files, in_progress_dir, manifest_id, name_encoding)
        if result.skipped:
            self.log.warning(
                "Skipped %d file(s) claiming into %s on %s: %s",
                len(result.skipped),
                in_progress_dir,
                self.address,
                claims.describe_skipped(result.skipped),
            )
        return result.claimed

    @_reconnect_once
    def claim_status(self, in_progress_dir: str, manifest_id: str) -> dict[str, list[str]]:
        """
        Split a claim's files into ``sent`` (a receipt lists their path, size and mtime) and ``unsent``.

        :param in_progress_dir: the dated in-progress directory
        :param manifest_id: the claim's manifest id (:func:`airflow_outamation.claims.manifest_id_for`
            of the DAG run for ClaimFilesOperator)
        :return: ``{"sent": [paths], "unsent": [paths]}``
        :raises SFTPConnectError: the server cannot be reached or the connection went away (after one retry)
        """
        with self.get_managed_conn() as sftp:
            return claims.claim_status(sftp, in_progress_dir, manifest_id)

    @_reconnect_once
    def project_status(
        self,
        base_path: str,
        source_dir: str = "input",
        in_progress_dir: str = "in_progress",
        dates: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Ready, claimed, sent, unsent, rejected, completed files (:func:`claims.project_status`)."""
        with self.get_managed_conn() as sftp:
            return claims.project_status(sftp, base_path, source_dir, in_progress_dir, dates)

    @_reconnect_once
    def run_on_sftp(self, func: Callable[..., T], *args: Any) -> T:
        """
        Run ``func(sftp, *args)`` on a pooled SFTP client: how operators reach the claim ledger.

        ``func`` is one of :mod:`airflow_outamation.claims`' operations (``record_sent``,
        ``open_batches``, ``purge_finished``, ...). A call whose connection went away is run once
        more on a new connection: every operation is safe to repeat (a repeated ``record_attempt``
        may count one failed send twice).

        :raises SFTPConnectError: the server cannot be reached or the connection went away (after one retry)
        """
        with self.get_managed_conn() as sftp:
            return func(sftp, *args)


def _wrap_inherited_methods() -> None:
    """Give the stock hook's methods of :data:`RECONNECTING_METHODS` the reconnect-once behaviour."""
    for name in RECONNECTING_METHODS:
        setattr(PooledSFTPHook, name, _reconnect_once(getattr(SFTPHook, name)))


_wrap_inherited_methods()

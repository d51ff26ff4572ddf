"""
A TCP proxy on 127.0.0.1 that delays every byte by a fixed time each way: a long link, on loopback.

For benchmarks that must show what round trips cost (``tc netem`` needs a kernel module that
containers often lack). Order is kept; bandwidth is not limited.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_outamation.testing.netns import NetworkNamespace


class LatencyProxy:
    """
    Forward ``127.0.0.1:<port>`` to ``target_port``, delaying each direction by ``delay`` seconds.

    With ``delay`` 0 it is a plain forwarder that counts and can drop connections (the test bed puts
    one in front of a server that cannot drop its clients' connections by itself).

    :param target_port: the port of the server on 127.0.0.1
    :param delay: one-way delay in seconds (a round trip costs twice this)
    :param port: the port to listen on; a free one when 0
    :param target_namespace: the network namespace the target listens in (a bridge into it); the
        proxy's own when ``None``
    """

    def __init__(
        self,
        target_port: int,
        delay: float,
        port: int = 0,
        target_namespace: NetworkNamespace | None = None,
    ) -> None:
        self.target_port = target_port
        self.target_namespace = target_namespace
        self.delay = delay
        self.port = port
        #: Connections accepted since the proxy started.
        self.accepted = 0
        #: Round trips: times a client spoke again after the server answered (a pipelined burst is one).
        self.round_trips = 0
        self._clients: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="latency-proxy", daemon=True)

    def start(self) -> LatencyProxy:
        """Listen on a free port (``self.port``) in a background thread."""
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self.port = started.result(timeout=10)
        return self

    def stop(self) -> None:
        """Stop listening and close every proxied connection."""
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def active(self) -> int:
        """Connections open right now."""
        return len(self._clients)

    def drop_connections(self) -> None:
        """Abort every proxied connection, as a network failure would."""
        asyncio.run_coroutine_threadsafe(self._drop(), self._loop).result(timeout=10)

    async def _drop(self) -> None:
        for writer in list(self._clients):
            writer.transport.abort()

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._proxy, "127.0.0.1", self.port, reuse_address=True)
        return int(self._server.sockets[0].getsockname()[1])

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = asyncio.all_tasks() - {asyncio.current_task()}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _proxy(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._clients.add(client_writer)
        try:
            server_reader, server_writer = await self._connect_target()
        except OSError:
            self._clients.discard(client_writer)
            client_writer.transport.abort()
            return
        answered = [False]  # the server spoke since the client last did
        try:
            await asyncio.gather(
                self._pipe(client_reader, server_writer, answered, True),
                self._pipe(server_reader, client_writer, answered, False),
            )
        except (asyncio.CancelledError, ConnectionError):
            pass  # stopped, or one side went away: close both
        finally:
            self._clients.discard(client_writer)
            client_writer.close()
            server_writer.close()

    async def _connect_target(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to the target on 127.0.0.1, in the target's namespace when it has one."""
        if self.target_namespace is None:
            return await asyncio.open_connection("127.0.0.1", self.target_port)
        sock = self.target_namespace.run(socket.socket)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.target_port))
        except BaseException:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        answered: list[bool],
        from_client: bool,
    ) -> None:
        """Copy ``reader`` to ``writer``, each chunk ``delay`` after it was read; count round trips."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            try:
                while True:
                    due, data = await queue.get()
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    if not data:
                        writer.write_eof()
                        return
                    writer.write(data)
                    await writer.drain()
            except ConnectionError:
                return  # the receiving side went away; _proxy closes both

        delivery = asyncio.create_task(deliver())
        try:
            while data := await reader.read(1 << 16):
                if from_client and answered[0]:
                    self.round_trips += 1
                answered[0] = not from_client
                queue.put_nowait((time.monotonic() + self.delay, data))
            queue.put_nowait((time.monotonic() + self.delay, b""))
            await delivery
        finally:
            delivery.cancel()

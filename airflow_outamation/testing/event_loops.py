"""Run asyncio code from a synchronous test, as the triggerer would, without leaking pooled connections."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from airflow_outamation.hooks.sftp_async import PooledSFTPHookAsync

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` in a fresh event loop, closing the pooled SFTP connections it opened."""

    async def main() -> T:
        try:
            return await coro
        finally:
            await PooledSFTPHookAsync.close_all()

    return asyncio.run(main())

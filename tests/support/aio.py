"""Running a coroutine from a synchronous test.

``asyncio.run`` refuses to start when the thread already has a running loop, which Playwright's sync API
leaves behind for the rest of the session once the browser tests ran; a fresh thread has no loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()

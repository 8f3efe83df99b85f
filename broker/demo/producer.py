"""Produce the demo's chunks in this process, or in a worker process while this one writes.

Generating a chunk (sealing identifiers, consent evidence, vault records) costs about as much CPU as
writing it, and both hold the GIL most of the time, so threads do not overlap them (measured: slower). A
worker process does: it produces chunk ``i + 1`` while the parent writes chunk ``i``, and hands each over
pickled through a pipe, which blocks when the parent is behind (about one chunk waits in memory).

The worker is a plain ``python -m broker.demo.worker`` subprocess rather than ``multiprocessing``, whose
"spawn" re-runs the caller's main script (any unguarded script or notebook calling ``seed_demo`` would seed
itself recursively). The plan it reads on stdin includes the master key and pepper: they go to a child of
this very process through an anonymous pipe, never to disk or over a network.

Chunk ``i`` is the same rows wherever it is produced (:mod:`broker.demo.chunks`), so the choice between the
two changes the wall time, never the city.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Iterator
from typing import IO, Any

from broker.demo.chunks import ChunkPlan, Rows, chunk_rows

Chunk = tuple[int, int, int]  # (index, first ordinal, size)
_LENGTH = struct.Struct("!Q")
DONE, FAILED = "done", "failed"


class ProducerFailed(RuntimeError):
    """The worker process failed; its traceback is the message."""


def in_process(plan: ChunkPlan, chunks: list[Chunk]) -> Iterator[tuple[int, Rows]]:
    for index, first, size in chunks:
        yield size, chunk_rows(plan, index, first, size)


def send(stream: IO[bytes], item: Any) -> None:
    data = pickle.dumps(item, pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)))
    stream.write(data)
    stream.flush()


def receive(stream: IO[bytes]) -> Any:
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        raise EOFError
    size = _LENGTH.unpack(header)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


def in_worker(plan: ChunkPlan, chunks: list[Chunk]) -> Iterator[tuple[int, Rows]]:
    # The worker imports ``broker`` from wherever this process does, installed or not.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    worker = subprocess.Popen([sys.executable, "-m", "broker.demo.worker"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env=env)
    if worker.stdin is None or worker.stdout is None:  # pragma: no cover - both are PIPE above
        raise ProducerFailed("the demo seed worker has no pipes")
    try:
        send(worker.stdin, (plan, chunks))
        worker.stdin.close()
        while True:
            try:
                kind, payload = receive(worker.stdout)
            except EOFError:
                raise ProducerFailed(f"the demo seed worker stopped (exit code {worker.wait()})") from None
            if kind == DONE:
                return
            if kind == FAILED:
                raise ProducerFailed(payload)
            yield kind, payload
    finally:
        worker.stdout.close()
        try:
            worker.wait(timeout=5)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()

"""The demo seed worker: ``python -m broker.demo.worker``, started by :func:`broker.demo.producer.in_worker`.

Reads ``(plan, chunks)`` on stdin and writes one ``(size, rows)`` frame per chunk on stdout, then a
``done`` frame, or a ``failed`` frame with the traceback.
"""

from __future__ import annotations

import gc
import os
import sys
import traceback

from broker.demo.chunks import chunk_rows
from broker.demo.producer import DONE, FAILED, receive, send


def main() -> None:
    gc.disable()  # as in the parent: millions of tuples, no cycles
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # a stray print must not corrupt the frames
    plan, chunks = receive(sys.stdin.buffer)
    try:
        for index, first, size in chunks:
            send(out, (size, chunk_rows(plan, index, first, size)))
        send(out, (DONE, None))
    except BrokenPipeError:  # the parent stopped reading: it failed and says why
        return
    except BaseException:
        send(out, (FAILED, traceback.format_exc()))


if __name__ == "__main__":
    main()

"""Dependency aliases shared by the routers (``Annotated`` so routes read as plain parameters)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from broker.db import session_scope
from broker.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_session(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Iterator[Session]:
    with session_scope(runtime.engine) as session:
        yield session


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
# scope="function": the unit of work commits before the response is sent, so a 200 never reports a write
# that then failed to commit (FastAPI's default runs a yield dependency's exit after the response).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

"""Refusals in the access log: authorization failures and refused logins, each in a transaction of its own.

A refusal has no action to share a transaction with, and the request it answers ends in an error (whose
transaction, if any, rolls back), so its entry commits on its own, before the error is raised.

Only refusals that name someone are logged: a portal account, a client by a token this broker issued, an
account by the email typed. A request that names no one (no token, a bearer string that is not one of ours)
is refused without an entry: anyone on the internet could send those by the million, and the log is
immutable. For the same reason a throttled login is logged once per actor and throttle window, not once per
attempt (:func:`logged_since`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session

from broker.audit import actions
from broker.audit.log import AuditEvent, record
from broker.audit.models import AuditEntry
from broker.db import session_scope
from broker.identity.models import Account
from broker.timeutil import as_utc

_ENTRIES = AuditEntry.__table__


def record_apart(engine: Engine, event: AuditEvent, at: datetime) -> int:
    """Append ``event`` in a transaction of its own; its index."""
    with session_scope(engine) as session:
        return record(session, event, at)


def account_refused(engine: Engine, at: datetime, account_id: str, *, resource: str, reason: str) -> None:
    """A logged-in account was refused ``resource`` (a staff account on a citizen's page, a citizen on the log)."""
    with session_scope(engine) as session:
        account = session.get(Account, account_id)
        actor = actions.account_actor(session, account) if account else actions.staff(account_id)
        record(session, AuditEvent(actor=actor, action=actions.AUTHORIZATION_FAILED,
                                   details={"resource": resource, "reason": reason}), at)


def logged_since(session: Session, *, action: str, actor: str, since: datetime, details: dict[str, Any]) -> bool:
    """Whether ``actor`` already has an ``action`` entry since ``since`` whose details include ``details``.

    Reads the few entries of one actor and action in a short window (both are indexed columns).
    """
    bodies = session.execute(select(_ENTRIES.c.body).where(
        _ENTRIES.c.action == action, _ENTRIES.c.actor == actor, _ENTRIES.c.at >= as_utc(since))).scalars()
    for body in bodies:
        held = json.loads(body).get("details") or {}
        if all(held.get(key) == value for key, value in details.items()):
            return True
    return False

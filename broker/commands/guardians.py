"""``consent-broker guardians``: record who holds parental responsibility for which minor (GDPR Art 8).

The city establishes these links from its own records, never on a citizen's say-so; a guardian's consent for
a minor is refused without one. Citizens are named by the email they registered with, which the broker finds
through its blind index; output names them by pseudonym only. Each link and unlink is audited, actor
``operator``.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer

from broker.audit import actions
from broker.db import session_scope
from broker.errors import BrokerError, NotFound
from broker.identity.citizens import CitizenService
from broker.identity.guardianship import Basis, Guardianships, in_force
from broker.identity.models import Citizen, Guardianship
from broker.runtime import Runtime
from broker.settings import Settings
from broker.timeutil import as_utc

app = typer.Typer(help="Guardianship links between adults and the minors in their care.", no_args_is_help=True)

GuardianEmail = Annotated[str, typer.Option("--guardian-email", help="The guardian's registered email address.")]
MinorEmail = Annotated[str, typer.Option("--minor-email", help="The minor's registered email address.")]


def _runtime() -> Runtime:
    return Runtime.from_settings(Settings())


def _citizen(citizens: CitizenService, email: str, who: str) -> Citizen:
    found = citizens.by_email(email)
    if found is None:
        raise NotFound(f"no citizen registered with the {who}'s email address")
    return found


def _fail(exc: BrokerError) -> typer.Exit:
    typer.echo(f"error: {exc.detail}", err=True)
    return typer.Exit(code=1)


@app.command()
def link(guardian_email: GuardianEmail, minor_email: MinorEmail,
         basis: Annotated[Basis, typer.Option(help="How the city knows: registry records or a document "
                                                    "checked by staff.")] = Basis.registry) -> None:
    """Record that the guardian holds parental responsibility for the minor."""
    runtime = _runtime()
    try:
        with session_scope(runtime.engine) as session:
            citizens = CitizenService(session, runtime.secrets)
            guardian, minor = _citizen(citizens, guardian_email, "guardian"), _citizen(citizens, minor_email, "minor")
            done = Guardianships(session).establish(guardian, minor, basis=basis, actor=actions.OPERATOR,
                                                    now=runtime.clock.now())
            guardian_alias, minor_alias = guardian.pseudonym, minor.pseudonym
    except BrokerError as exc:
        raise _fail(exc) from None
    finally:
        runtime.dispose()
    typer.echo(f"linked guardian {guardian_alias} to minor {minor_alias} (link {done.id}, basis {done.basis})")


@app.command()
def unlink(guardian_email: GuardianEmail, minor_email: MinorEmail) -> None:
    """End the guardian's link to the minor: their consents stand, new ones are refused."""
    runtime = _runtime()
    try:
        with session_scope(runtime.engine) as session:
            citizens = CitizenService(session, runtime.secrets)
            guardian, minor = _citizen(citizens, guardian_email, "guardian"), _citizen(citizens, minor_email, "minor")
            done = Guardianships(session).end(guardian, minor, actor=actions.OPERATOR, now=runtime.clock.now())
    except BrokerError as exc:
        raise _fail(exc) from None
    finally:
        runtime.dispose()
    typer.echo(f"ended link {done.id}")


def _status(row: Guardianship, guardian: Citizen | None, minor: Citizen | None, today: date) -> str:
    """``ended <when>``, ``in force``, or ``lapsed``: not ended, yet no longer counting (the ward came of age,
    someone was erased), which the ledger already treats as no link at all."""
    if row.ended_at is not None:
        return f"ended {as_utc(row.ended_at).isoformat()}"
    if guardian is not None and minor is not None and in_force(row, guardian, minor, today):
        return "in force"
    return "lapsed"


@app.command("list")
def list_links(email: Annotated[str, typer.Argument(help="A citizen's registered email address.")]) -> None:
    """Every link naming this citizen, as guardian or as ward, ended ones included."""
    runtime = _runtime()
    try:
        with session_scope(runtime.engine) as session:
            citizen = _citizen(CitizenService(session, runtime.secrets), email, "citizen")
            today = as_utc(runtime.clock.now()).date()
            for row in Guardianships(session).links_of(citizen):
                role = "guardian-of" if row.guardian_id == citizen.id else "ward-of"
                guardian, minor = session.get(Citizen, row.guardian_id), session.get(Citizen, row.minor_id)
                other = minor if role == "guardian-of" else guardian
                typer.echo(f"{row.id}\t{role}\t{other.pseudonym if other else '?'}\t{row.basis}\t"
                           f"{as_utc(row.since).isoformat()}\t{_status(row, guardian, minor, today)}")
    except BrokerError as exc:
        raise _fail(exc) from None
    finally:
        runtime.dispose()

"""``consent-broker clients``: register, rotate and disable the credentials of city services and providers.

The policy (``policies/services.yaml``) says who a service is and what it may do; these commands record how
it authenticates. A generated secret is printed once, to stdout, and only its argon2 hash is stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from broker.db import session_scope
from broker.errors import BrokerError
from broker.oauth.registration import ClientRegistry, Registered
from broker.runtime import Runtime
from broker.settings import Settings

app = typer.Typer(help="OAuth clients of city services and data providers.", no_args_is_help=True)

Service = Annotated[str, typer.Argument(help="The service id in policies/services.yaml (also the client id).")]
JwksFile = Annotated[Path | None, typer.Option("--jwks", exists=True, dir_okay=False, readable=True,
                                                help="The client's public JWKS (private_key_jwt).")]


def _runtime() -> Runtime:
    return Runtime.from_settings(Settings())


def _fail(exc: BrokerError) -> typer.Exit:
    typer.echo(f"error: {exc.detail}", err=True)
    return typer.Exit(code=1)


def _report(done: Registered, verb: str) -> None:
    typer.echo(f"{verb} client {done.client_id} (authentication: {', '.join(done.auth_methods) or 'none usable'})",
               err=True)
    if done.secret is not None:
        typer.echo("client secret (shown once, store it now):", err=True)
        typer.echo(done.secret)


@app.command()
def register(
    service: Service,
    jwks: JwksFile = None,
    secret: Annotated[bool, typer.Option("--secret", help="Generate a client secret (client_secret_basic).")] = False,
) -> None:
    """Register the client of a service, with its public keys or a generated secret."""
    runtime = _runtime()
    try:
        with session_scope(runtime.engine) as session:
            done = ClientRegistry(session, runtime.policy).register(
                service, jwks=jwks.read_text() if jwks else None, secret=secret, now=runtime.clock.now())
    except BrokerError as exc:
        raise _fail(exc) from None
    _report(done, "registered")


@app.command()
def rotate(service: Service, jwks: JwksFile = None) -> None:
    """Replace a client's credentials: its JWKS with --jwks, else its secret (printed once)."""
    runtime = _runtime()
    try:
        with session_scope(runtime.engine) as session:
            done = ClientRegistry(session, runtime.policy).rotate(
                service, jwks=jwks.read_text() if jwks else None, now=runtime.clock.now())
    except BrokerError as exc:
        raise _fail(exc) from None
    _report(done, "rotated")


@app.command()
def disable(service: Service) -> None:
    """Disable a client: its token requests and its live tokens are refused from now on."""
    runtime = _runtime()
    try:
        with session_scope(runtime.engine) as session:
            ClientRegistry(session, runtime.policy).disable(service, now=runtime.clock.now())
    except BrokerError as exc:
        raise _fail(exc) from None
    typer.echo(f"disabled client {service}")


@app.command("list")
def list_clients() -> None:
    """List registered clients and how each may authenticate."""
    runtime = _runtime()
    with session_scope(runtime.engine) as session:
        for row in ClientRegistry(session, runtime.policy).list():
            kinds = [name for name, present in (("jwks", row.jwks), ("secret", row.secret_hash)) if present]
            state = "disabled" if row.disabled_at else "enabled"
            typer.echo(f"{row.client_id}\t{state}\t{'+'.join(kinds) or '-'}")

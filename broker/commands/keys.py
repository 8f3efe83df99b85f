"""``consent-broker keys``: the broker's signing keys (ES256)."""

from __future__ import annotations

from datetime import timedelta

import typer

from broker.audit import AuditEvent, actions, record
from broker.db import session_scope
from broker.errors import BrokerError
from broker.keys import KeyRing, rotate_signing_key
from broker.oauth.rfc9068 import ACCESS_TOKEN_LIFETIME
from broker.runtime import Runtime
from broker.settings import Settings

app = typer.Typer(help="The broker's signing keys.", no_args_is_help=True)


@app.command()
def rotate() -> None:
    """Add a signing key, and retire the oldest once no token it signed can still be valid.

    The new key signs from now on (every worker picks it up within seconds); the previous one stays in the
    JWKS until the tokens it signed have expired (5 minutes), so at most two keys are live. Rotating again
    before then is refused.
    """
    runtime = Runtime.from_settings(Settings())
    try:
        with session_scope(runtime.engine) as session:
            done = rotate_signing_key(session, runtime.secrets, runtime.clock.now(),
                                      token_lifetime=timedelta(seconds=ACCESS_TOKEN_LIFETIME))
            record(session, AuditEvent(actor=actions.OPERATOR, action=actions.KEY_ROTATED,
                                       details={"created": done.created, "retired": done.retired}),
                   runtime.clock.now())
    except BrokerError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"new signing key {done.created}")
    for kid in done.retired:
        typer.echo(f"retired {kid}")


@app.command("list")
def list_keys() -> None:
    """Every published key, newest first: the signing one, those still verifying tokens, the retired ones."""
    runtime = Runtime.from_settings(Settings())
    with session_scope(runtime.engine) as session:
        ring = KeyRing.load(session, runtime.secrets)
    for key in ring.jwks()["keys"]:
        live = key["kid"] in ring.live_kids
        mark = "signing" if key["kid"] == ring.current_kid else "verifying" if live else "retired"
        typer.echo(f"{key['kid']}\t{mark}")

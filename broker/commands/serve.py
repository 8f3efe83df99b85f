"""``consent-broker serve``: run the HTTP API with uvicorn."""

from __future__ import annotations

import typer
import uvicorn

from broker.app import create_app
from broker.policy import PolicyError
from broker.schema import SchemaOutOfDate
from broker.settings import Settings


def serve(host: str = typer.Option("127.0.0.1", help="Address to listen on."),
          port: int = typer.Option(8000, help="Port to listen on.")) -> None:
    """Serve the broker. Refuses to start on an invalid policy or an out-of-date schema."""
    run(Settings(), host=host, port=port)


def run(settings: Settings, *, host: str, port: int) -> None:
    try:
        app = create_app(settings)
    except (SchemaOutOfDate, PolicyError) as exc:
        for line in getattr(exc, "errors", None) or [str(exc)]:
            typer.echo(line, err=True)
        raise typer.Exit(1) from None
    # proxy_headers=False: forwarded headers are honoured only from BROKER_TRUSTED_PROXIES (broker.oauth.transport),
    # never from uvicorn's default of trusting loopback.
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, proxy_headers=False)

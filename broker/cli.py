"""``consent-broker``: the command line of the broker (DESIGN §3)."""

from __future__ import annotations

import typer

from broker.commands import audit, clients, db, demo, guardians, keys, policy, serve

app = typer.Typer(help="Consent Broker: a privacy-preserving data-sharing consent broker for cities.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(db.app, name="db")
app.add_typer(policy.app, name="policy")
app.add_typer(clients.app, name="clients")
app.add_typer(keys.app, name="keys")
app.add_typer(audit.app, name="audit")
app.add_typer(guardians.app, name="guardians")
app.command("serve")(serve.serve)
app.command("demo")(demo.demo)

if __name__ == "__main__":  # pragma: no cover
    app()

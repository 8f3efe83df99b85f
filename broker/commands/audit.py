"""``consent-broker audit``: verify the access log, against the database or offline; integrate it now.

``audit verify`` with no options checks the database of this install; with ``--entries`` it needs no database
at all: an auditor's export (``GET /v1/audit/entries?format=jsonl``), the JWKS (``GET /v1/audit/keys``) and the
checkpoints they kept. Either way it prints what it checked, then ``OK`` or the first inconsistency (which
index, what differs), and exits 1 on any.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from broker.audit.integrator import integrate
from broker.audit.sources import read_kept, verify_database, verify_export
from broker.audit.verify import Report
from broker.runtime import Runtime
from broker.settings import Settings

app = typer.Typer(help="The tamper-evident access log.", no_args_is_help=True)

Entries = Annotated[Path | None, typer.Option(
    "--entries", help="Verify offline: a JSON Lines export of the log (no database is read).", exists=True,
    dir_okay=False)]
Jwks = Annotated[Path | None, typer.Option(
    "--jwks", help="The broker's public keys (GET /v1/audit/keys); needed with --entries.", exists=True,
    dir_okay=False)]
Kept = Annotated[Path | None, typer.Option(
    "--checkpoints", help="Checkpoints you kept: one compact JWS per line, or GET /v1/audit/checkpoint answers.",
    exists=True, dir_okay=False)]


def _print(report: Report) -> None:
    for line in report.checked:
        typer.echo(f"checked  {line}")
    if report.finding is None:
        typer.echo("OK: the log is consistent with every checkpoint")
    else:
        typer.echo(f"FAILED: {report.finding}", err=True)
        raise typer.Exit(code=1)


@app.command()
def verify(entries: Entries = None, jwks: Jwks = None, checkpoints: Kept = None) -> None:
    """Recompute every leaf and root, check every checkpoint and the budgets; exit 1 on any inconsistency."""
    kept = read_kept(checkpoints.read_text().splitlines()) if checkpoints else []
    keys = json.loads(jwks.read_text()) if jwks else None
    if entries is not None:
        if keys is None:
            typer.echo("error: --entries needs --jwks (the keys the checkpoints are signed with)", err=True)
            raise typer.Exit(code=2)
        with entries.open(encoding="utf-8") as lines:
            _print(verify_export(lines, keys, kept))
        return
    runtime = Runtime.from_settings(Settings())
    try:
        _print(verify_database(runtime.engine, kept, keys))
    finally:
        runtime.dispose()


@app.command("integrate")
def integrate_now() -> None:
    """Fold the entries appended since the last checkpoint into the tree and sign a new checkpoint."""
    runtime = Runtime.from_settings(Settings())
    try:
        checkpoint = integrate(runtime.engine, runtime.secrets, runtime.clock)
    finally:
        runtime.dispose()
    if checkpoint is None:
        typer.echo("nothing to integrate")
    else:
        typer.echo(f"checkpoint: tree_size {checkpoint.tree_size}, root {checkpoint.root_hash}, "
                   f"{checkpoint.timestamp}")

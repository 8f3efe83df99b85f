"""``consent-broker demo``: migrate, seed the demo city once, print the logins, then serve.

Registered in :mod:`broker.cli` with ``app.command("demo")(demo.demo)``.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from broker.commands import serve
from broker.commands.db import upgrade_runtime
from broker.demo import DemoCredentials, DemoIncomplete, seed_demo
from broker.policy import PolicyError
from broker.runtime import Runtime
from broker.settings import Settings

# Below this a seeding takes a few seconds and a progress bar would only flicker.
PROGRESS_FROM = 20_000


def demo(citizens: int = typer.Option(2_000, min=0, help="Synthetic citizens besides the three named ones."),
         seed: int = typer.Option(42, help="Same seed, same city (identifiers, consents, records)."),
         records_per_citizen: float = typer.Option(10.0, min=0, help="Vault records per citizen, on average."),
         no_serve: bool = typer.Option(False, "--no-serve", help="Seed and print the logins, but do not serve."),
         host: str = typer.Option("127.0.0.1", help="Address to listen on."),
         port: int = typer.Option(8000, help="Port to listen on.")) -> None:
    """Seed a demo city (once per database) and serve it."""
    settings = Settings()
    try:
        runtime = Runtime.from_settings(settings)
    except PolicyError as exc:
        for line in exc.errors:
            typer.echo(line, err=True)
        raise typer.Exit(1) from None
    upgrade_runtime(runtime)
    console = Console(stderr=True)
    try:
        if citizens >= PROGRESS_FROM:
            credentials = _seed_with_progress(runtime, console, citizens=citizens, seed=seed,
                                              records_per_citizen=records_per_citizen)
        else:
            credentials = seed_demo(runtime, citizens=citizens, seed=seed, records_per_citizen=records_per_citizen)
    except DemoIncomplete as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    _print_logins(credentials)
    if not no_serve:
        typer.echo(f"serving on http://{host}:{port}/ (Ctrl-C to stop)")
        serve.run(settings, host=host, port=port)


def _seed_with_progress(runtime: Runtime, console: Console, **options: float) -> DemoCredentials:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                label = "citizens" if stage == "citizens" else "rebuilding indexes"
                tasks[stage] = bar.add_task(label, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        return seed_demo(runtime, progress=report, citizens=int(options["citizens"]), seed=int(options["seed"]),
                         records_per_citizen=options["records_per_citizen"])


def _print_logins(credentials: DemoCredentials) -> None:
    """Portal logins and client ids; private keys and client secrets stay in the file."""
    typer.echo(f"demo credentials: {credentials.path}")
    for title, logins in (("citizens", credentials.citizens), ("auditors", credentials.auditors),
                          ("admins", credentials.admins)):
        for login in logins:
            typer.echo(f"  {title[:-1]:8} {login.email:32} password: {login.password}")
    for title, clients in (("service", credentials.services), ("provider", credentials.providers)):
        for client in clients:
            typer.echo(f"  {title:8} client_id: {client.client_id} ({client.auth_method})")

"""``consent-broker policy``: check the policy files and print the Art 30 register from them.

``check`` is what a reviewer (or CI) runs on a pull request that touches ``policies/``: it lists every
error, one per line on stderr, and exits 1, so a change is fixed in one pass and never merged broken.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from broker.policy import Policy, PolicyError, load_policy, policy_digest
from broker.policy.register import processing_register
from broker.settings import Settings

app = typer.Typer(help="Check the policy files; print the GDPR record of processing activities.",
                  no_args_is_help=True)

PolicyDir = Annotated[
    Path | None,
    typer.Argument(help="Directory holding broker.yaml, purposes.yaml, datasets.yaml and services.yaml "
                        "[default: BROKER_POLICY_DIR, else ./policies]", show_default=False),
]


class Language(StrEnum):
    en = "en"
    fr = "fr"


def _load_or_exit(directory: Path | None) -> tuple[Path, Policy]:
    """Load the policies, or print every error to stderr and exit 1."""
    directory = directory if directory is not None else Settings().policy_dir
    try:
        return directory, load_policy(directory)
    except PolicyError as exc:
        for line in exc.errors:
            typer.echo(line, err=True)
        raise typer.Exit(code=1) from None


@app.command()
def check(directory: PolicyDir = None) -> None:
    """Check every policy file and the references between them."""
    directory, policy = _load_or_exit(directory)
    by_consent = sum(1 for p in policy.purposes if p.takes_consent)
    providers = sum(1 for s in policy.services if s.kind == "provider")
    typer.echo(
        f"OK {directory}: {_count(len(policy.purposes), 'purpose')} ({by_consent} by consent), "
        f"{_count(len(policy.datasets), 'dataset')}, {_count(len(policy.services) - providers, 'service')}, "
        f"{_count(providers, 'provider')}; digest {policy_digest(policy)[:16]}"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


@app.command()
def register(
    directory: PolicyDir = None,
    lang: Annotated[Language, typer.Option("--lang", help="Language of the register.")] = Language.en,
) -> None:
    """Print the GDPR Art 30(1) record of processing activities as Markdown."""
    _, policy = _load_or_exit(directory)
    typer.echo(processing_register(policy, lang=lang.value), nl=False)

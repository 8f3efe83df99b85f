"""``consent-broker demo --no-serve``: migrates, seeds once, prints logins but never a private key."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from broker.commands import demo

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("demo")(demo.demo)
    app.command("noop")(lambda: None)  # two commands, so "demo" is addressed by name as in broker.cli
    return app


def test_demo_seeds_once_and_prints_the_logins(tmp_path: Path) -> None:
    env = {"BROKER_DATA_DIR": str(tmp_path / "var"), "BROKER_POLICY_DIR": str(POLICIES)}
    runner = CliRunner()
    result = runner.invoke(_app(), ["demo", "--citizens", "30", "--no-serve"], env=env)
    assert result.exit_code == 0, result.output
    credentials = json.loads((tmp_path / "var" / "demo-credentials.json").read_text())
    for login in credentials["citizens"] + credentials["auditors"] + credentials["admins"]:
        assert login["email"] in result.output and login["password"] in result.output
    for client in credentials["services"] + credentials["providers"]:
        assert client["client_id"] in result.output
        assert client["private_jwk"]["d"] not in result.output
        assert not client["client_secret"] or client["client_secret"] not in result.output

    again = runner.invoke(_app(), ["demo", "--citizens", "30", "--no-serve"], env=env)
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "var" / "demo-credentials.json").read_text()) == credentials

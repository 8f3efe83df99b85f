"""The operator's commands: `db upgrade` and `serve`'s refusal of an out-of-date schema or a bad policy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broker.cli import app

POLICIES = Path(__file__).resolve().parent.parent / "policies"
runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"BROKER_DATA_DIR": str(tmp_path / "var"), "BROKER_POLICY_DIR": str(POLICIES)}


def test_serve_refuses_an_unmigrated_database_and_names_the_command(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["serve"], env=env)
    assert result.exit_code == 1
    assert "consent-broker db upgrade" in result.output


def test_db_upgrade_brings_the_schema_to_head(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    status = runner.invoke(app, ["db", "current"], env=env)
    database, code = status.output.strip().split("; ")
    assert database.removeprefix("database: ") == code.removeprefix("code: ")
    again = runner.invoke(app, ["db", "upgrade"], env=env)
    assert again.exit_code == 0


def test_serve_refuses_an_invalid_policy(env: dict[str, str], tmp_path: Path) -> None:
    broken = tmp_path / "policies"
    shutil.copytree(POLICIES, broken)
    text = (broken / "purposes.yaml").read_text()
    (broken / "purposes.yaml").write_text(text.replace("version:", "versoin:", 1))
    result = runner.invoke(app, ["serve"], env={**env, "BROKER_POLICY_DIR": str(broken)})
    assert result.exit_code == 1
    assert "purposes.yaml" in result.output and "versoin" in result.output

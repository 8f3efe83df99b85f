"""``consent-broker policy check`` and ``policy register``: exit codes, and errors on stderr one per line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from broker.cli import app as root_app
from broker.commands.policy import app

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
runner = CliRunner()


@pytest.fixture
def broken(tmp_path: Path) -> tuple[Path, list[str]]:
    """A copy of the policies with two mistakes, and the lines ``check`` must print for them."""
    directory = tmp_path / "policies"
    shutil.copytree(POLICIES, directory)
    path = directory / "purposes.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    ids = [p["id"] for p in document["purposes"]]
    air, parking = ids.index("air-quality-study"), ids.index("parking-availability")
    document["purposes"][air]["consent_validty_months"] = 6
    document["purposes"][parking]["datasets"][0]["dataset"] = "parking"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return directory, [
        f"purposes.yaml: purposes[{air}].consent_validty_months: unknown key",
        f"purposes.yaml: purposes[{parking}].datasets[0].dataset: unknown dataset 'parking'",
    ]


def test_check_prints_a_one_line_summary_and_exits_0() -> None:
    result = runner.invoke(app, ["check", str(POLICIES)])

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    [line] = result.stdout.splitlines()
    assert line.startswith(f"OK {POLICIES}: 5 purposes (4 by consent), 4 datasets, 3 services, 1 provider; digest ")


def test_check_prints_every_error_to_stderr_and_exits_1(broken: tuple[Path, list[str]]) -> None:
    directory, expected = broken
    result = runner.invoke(app, ["check", str(directory)])

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == expected


def test_check_reports_errors_across_files_one_per_line(broken: tuple[Path, list[str]]) -> None:
    directory, expected = broken
    (directory / "broker.yaml").unlink()
    path = directory / "services.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("traffic-planning", "traffic"), encoding="utf-8")

    result = runner.invoke(app, ["check", str(directory)])

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"broker.yaml: broker: file not found in {directory}",
        *expected,
        "services.yaml: services[0].purposes[0]: unknown purpose 'traffic'",
    ]


def test_check_defaults_to_the_configured_policy_dir(broken: tuple[Path, list[str]],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    directory, expected = broken
    monkeypatch.setenv("BROKER_POLICY_DIR", str(directory))

    result = runner.invoke(app, ["check"])

    assert result.exit_code == 1
    assert result.stderr.splitlines() == expected


def test_register_prints_the_markdown_register() -> None:
    english = runner.invoke(app, ["register", str(POLICIES)])
    french = runner.invoke(app, ["register", str(POLICIES), "--lang", "fr"])

    assert english.exit_code == 0 and french.exit_code == 0
    assert english.stdout.startswith("# Record of processing activities: Métropole de Lyon")
    assert french.stdout.startswith("# Registre des activités de traitement : Métropole de Lyon")
    assert english.stdout.count("\n### ") == french.stdout.count("\n### ") == 5


def test_register_refuses_an_unknown_language() -> None:
    result = runner.invoke(app, ["register", str(POLICIES), "--lang", "de"])
    assert result.exit_code == 2
    assert "'de' is not one of" in result.stderr


def test_register_refuses_a_broken_policy(broken: tuple[Path, list[str]]) -> None:
    directory, expected = broken
    result = runner.invoke(app, ["register", str(directory)])

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == expected


def test_the_broker_cli_mounts_the_policy_commands() -> None:
    result = runner.invoke(root_app, ["policy", "check", str(POLICIES)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK ")


def test_python_dash_m_broker_cli_policy_check_runs(broken: tuple[Path, list[str]]) -> None:
    directory, expected = broken
    ok = subprocess.run([sys.executable, "-m", "broker.cli", "policy", "check", "policies"],
                        cwd=ROOT, capture_output=True, text=True, check=False)
    failing = subprocess.run([sys.executable, "-m", "broker.cli", "policy", "check", str(directory)],
                             cwd=ROOT, capture_output=True, text=True, check=False)

    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK policies: 5 purposes")
    assert failing.returncode == 1
    assert failing.stderr.splitlines() == expected

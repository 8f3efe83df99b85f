"""Returns in the policy: `policy check` refuses a consent purpose that promises nothing; amounts are exact."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from broker.commands.policy import app
from broker.policy import load_policy
from broker.policy.schema import ReturnKind
from tests.policy.policy_files import POLICIES, at, copy_policies, edit, errors_of

runner = CliRunner()


def test_policy_check_rejects_a_consent_purpose_with_no_return(tmp_path: Path) -> None:
    directory = copy_policies(tmp_path)

    def drop(doc: dict) -> int:
        i = at(doc["purposes"], "energy-renovation")
        doc["purposes"][i]["returns"] = []
        return i

    i = edit(directory, "purposes.yaml", drop)
    line = f"purposes.yaml: purposes[{i}]: a purpose based on consent must declare at least one return"
    assert errors_of(directory) == [line]
    result = runner.invoke(app, ["check", str(directory)])
    assert result.exit_code == 1 and result.stderr.splitlines() == [line]


def test_a_public_task_may_declare_no_return(tmp_path: Path) -> None:
    directory = copy_policies(tmp_path)
    edit(directory, "purposes.yaml",
         lambda doc: doc["purposes"][at(doc["purposes"], "traffic-planning")].update(returns=[]))
    assert load_policy(directory).purpose("traffic-planning").returns == []  # type: ignore[union-attr]


def test_amounts_are_exact_decimals_and_floats_are_refused(tmp_path: Path) -> None:
    policy = load_policy(POLICIES)
    money = next(r for r in policy.purpose("air-quality-study").returns if r.kind is ReturnKind.money)  # type: ignore[union-attr]
    assert money.amount == Decimal("0.05") and money.currency == "EUR"
    directory = copy_policies(tmp_path)

    def float_amount(doc: dict) -> int:
        i = at(doc["purposes"], "air-quality-study")
        doc["purposes"][i]["returns"][0]["amount"] = 0.05
        return i

    i = edit(directory, "purposes.yaml", float_amount)
    [error] = errors_of(directory)
    assert error.startswith(f"purposes.yaml: purposes[{i}].returns[0].amount: write money amounts as quoted decimal")

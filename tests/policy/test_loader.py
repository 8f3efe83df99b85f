"""broker.policy.loader: the shipped policies load, and every mistake comes back as ``<file>: <path>: <message>``.

Each case copies the real policies into a temporary directory, makes one mistake from
:mod:`tests.policy.policy_files` and checks the exact error line, and that it is the *only* line: one mistake
must not cascade into others.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.policy import Dataset, Field, Policy, PolicyError, Purpose, Service, load_policy
from broker.policy.loader import FILES, format_location
from broker.policy.schema import ReturnKind
from tests.policy import policy_files as mistakes
from tests.policy.policy_files import (
    CROSS_REFERENCES,
    POLICIES,
    SCHEMA_ERRORS,
    Document,
    Mistake,
    at,
    copy_policies,
    edit,
    errors_of,
    shipped,
    shipped_index,
)


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    return copy_policies(tmp_path)


def test_the_shipped_policies_load_clean() -> None:
    policy = load_policy(POLICIES)

    assert isinstance(policy, Policy)
    assert policy.broker.jurisdiction == "FR"
    assert policy.broker.default_minimum_age == 15
    assert policy.broker.domains["districts"] == [f"lyon-{n}" for n in range(1, 10)]
    assert {p.id for p in policy.purposes} == {
        "traffic-planning", "air-quality-study", "parking-availability", "energy-renovation", "public-health-study",
    }
    assert len(policy.datasets) == 4 and all("district" in d.group_by for d in policy.datasets)
    [provider] = [s for s in policy.services if s.kind == "provider"]
    assert set(provider.ingest) == {d.id for d in policy.datasets}
    assert provider.auth_method == "private_key_jwt"
    assert all(d.provider == provider.id for d in policy.datasets)
    assert len([s for s in policy.services if s.kind == "service"]) == 3


def test_the_shipped_purposes_cover_each_legal_situation() -> None:
    policy = load_policy(POLICIES)
    traffic, health = policy.purpose("traffic-planning"), policy.purpose("public-health-study")
    assert traffic is not None and health is not None

    assert traffic.legal_basis == "eu-gdpr:A6-1-e" and not traffic.takes_consent
    assert health.special_category and health.legal_basis == "eu-gdpr:A9-2-a"
    assert health.special_category_kinds == ["dpv:Health"] and policy.minimum_age(health) == 18
    assert {r.kind for p in policy.purposes for r in p.returns} == set(ReturnKind)
    assert {p.publish_open_data for p in policy.purposes} == {True, False}
    # Health data in the vault is reachable only through the explicit-consent purpose.
    users = [p.id for p in policy.purposes for u in p.datasets if "respiratory_symptoms" in [*u.fields, *u.group_by]]
    assert users == ["public-health-study"]


def test_the_package_exports_the_policy_api() -> None:
    assert all(cls.__module__ == "broker.policy.schema" for cls in (Policy, Purpose, Dataset, Field, Service))
    assert load_policy.__module__ == PolicyError.__module__ == "broker.policy.loader"


@pytest.mark.parametrize("case", CROSS_REFERENCES.values(), ids=CROSS_REFERENCES.keys())
def test_each_cross_reference_error_is_reported_alone(policy_dir: Path, case: Mistake) -> None:
    name, change = case
    expected = edit(policy_dir, name, change)
    assert errors_of(policy_dir) == [expected]


@pytest.mark.parametrize("case", SCHEMA_ERRORS.values(), ids=SCHEMA_ERRORS.keys())
def test_each_schema_error_is_reported_with_its_path(policy_dir: Path, case: Mistake) -> None:
    name, change = case
    expected = edit(policy_dir, name, change)
    assert errors_of(policy_dir) == [expected]


def test_an_invalid_purpose_is_still_known_to_the_services_that_name_it(policy_dir: Path) -> None:
    """A purpose that fails validation is reported once, not again as 'unknown' wherever it is named."""
    expected = edit(policy_dir, "purposes.yaml", mistakes.budget_out_of_order)
    errors = errors_of(policy_dir)
    assert errors == [expected]
    assert not any("unknown purpose" in line for line in errors)


def test_a_renamed_purpose_is_reported_where_it_is_still_named(policy_dir: Path) -> None:
    def rename(doc: Document) -> int:
        i = at(doc["purposes"], "energy-renovation")
        doc["purposes"][i]["id"] = "Energy Renovation"
        return i

    i = edit(policy_dir, "purposes.yaml", rename)
    service = shipped_index("services", "energy-transition")
    assert errors_of(policy_dir) == [
        f"purposes.yaml: purposes[{i}].id: 'Energy Renovation' is not an identifier: lowercase letters, digits, "
        "'-' or '_', starting with a letter, 2 to 63 characters",
        f"services.yaml: services[{service}].purposes[0]: unknown purpose 'energy-renovation'",
    ]


def test_several_errors_in_several_files_are_all_reported_in_file_order(policy_dir: Path) -> None:
    expected = [
        edit(policy_dir, "broker.yaml", mistakes.controller_unknown_key),
        edit(policy_dir, "purposes.yaml", mistakes.unknown_dataset),
        edit(policy_dir, "datasets.yaml", mistakes.numeric_without_bounds),
        edit(policy_dir, "services.yaml", mistakes.service_unknown_purpose),
    ]
    edit(policy_dir, "purposes.yaml", mistakes.misspelt_special_category)
    edit(policy_dir, "purposes.yaml", mistakes.budget_out_of_order)
    errors = errors_of(policy_dir)
    assert len(errors) == 6
    assert errors[0] == expected[0]
    assert set(errors[1:4]) == {expected[1], mistakes.misspelt_special_category(shipped("purposes")),
                                mistakes.budget_out_of_order(shipped("purposes"))}
    assert errors[4:] == expected[2:]


def test_the_error_message_lists_every_line() -> None:
    error = PolicyError(["a.yaml: x: one", "b.yaml: y: two"])
    assert error.errors == ["a.yaml: x: one", "b.yaml: y: two"]
    assert str(error) == "2 policy error(s):\na.yaml: x: one\nb.yaml: y: two"


# --- whole files ------------------------------------------------------------------------------------------


def test_a_missing_file_is_reported_and_nothing_cascades_from_it(policy_dir: Path) -> None:
    (policy_dir / "services.yaml").unlink()
    assert errors_of(policy_dir) == [f"services.yaml: services: file not found in {policy_dir}"]


def test_an_empty_directory_reports_all_four_files(tmp_path: Path) -> None:
    assert errors_of(tmp_path) == [f"{name}: {key}: file not found in {tmp_path}" for name, (key, _) in FILES.items()]


def test_a_yaml_syntax_error_gives_line_and_column(policy_dir: Path) -> None:
    text = (policy_dir / "purposes.yaml").read_text(encoding="utf-8")
    lines = text.splitlines()
    n = next(n for n, line in enumerate(lines) if line.strip() == "fields: [distance_km, duration_min]")
    lines[n] = lines[n].replace("duration_min]", "duration_min")  # an unclosed flow sequence
    (policy_dir / "purposes.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    [error] = errors_of(policy_dir)
    assert error.startswith(f"purposes.yaml: line {n + 2}, column ")
    assert error.endswith("expected ',' or ']', but got ':'")


def test_a_duplicate_yaml_key_is_an_error_not_a_silent_override(policy_dir: Path) -> None:
    path = policy_dir / "broker.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    n = next(n for n, line in enumerate(lines) if line.strip() == "jurisdiction: FR")
    lines.insert(n + 1, "  jurisdiction: DE")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert errors_of(policy_dir) == [f"broker.yaml: line {n + 2}, column 3: duplicate key 'jurisdiction'"]


def test_yaml_merge_keys_still_work(policy_dir: Path) -> None:
    path = policy_dir / "purposes.yaml"
    text = path.read_text(encoding="utf-8")
    first = text.index("    budget:\n", text.index("id: traffic-planning"))
    text = text[:first] + "    budget: &shared\n" + text[first + len("    budget:\n"):]
    second = text.index("    budget:\n", text.index("id: air-quality-study"))
    end = text.index("    returns:", second)
    text = text[:second] + "    budget:\n      <<: *shared\n      total_epsilon: 7.0\n" + text[end:]
    path.write_text(text, encoding="utf-8")
    budget = load_policy(policy_dir).purpose("air-quality-study").budget  # type: ignore[union-attr]
    assert (budget.per_query_epsilon, budget.per_service_epsilon, budget.total_epsilon) == (0.5, 4.0, 7.0)


@pytest.mark.parametrize("content", ["- one\n- two\n", "purpose: []\n", "", "just text\n"])
def test_a_file_without_its_top_level_key_is_reported(policy_dir: Path, content: str) -> None:
    (policy_dir / "purposes.yaml").write_text(content, encoding="utf-8")
    assert errors_of(policy_dir) == [
        "purposes.yaml: purposes: the file must be a mapping with the single top-level key 'purposes'"
    ]


# --- locations -------------------------------------------------------------------------------------------


def test_format_location_indexes_lists_and_quotes_odd_keys() -> None:
    assert format_location(("purposes", 2, "datasets", 0, "dataset")) == "purposes[2].datasets[0].dataset"
    assert format_location(("broker", "domains", "Bad Key", "[key]")) == "broker.domains['Bad Key']"
    assert format_location((3,)) == "[3]"

"""broker.policy.register: the Art 30(1) record names every activity with what the article asks for."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.policy import Policy, load_policy
from broker.policy.register import legal_basis_meaning, processing_register
from broker.policy.schema import LEGAL_BASES

POLICIES = Path(__file__).resolve().parents[2] / "policies"


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(POLICIES)


def activity(register: str, purpose_id: str) -> str:
    """The section of the register about one purpose."""
    sections = register.split("\n### ")[1:]
    return next(section for section in sections if f"(`{purpose_id}`," in section.splitlines()[0])


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_every_purpose_appears_with_its_title_and_legal_basis(policy: Policy, lang: str) -> None:
    register = processing_register(policy, lang=lang)  # type: ignore[arg-type]

    assert register.count("\n### ") == len(policy.purposes) == 5
    for purpose in policy.purposes:
        section = activity(register, purpose.id)
        assert getattr(purpose.title, lang) in section
        assert getattr(purpose.description, lang) in section
        assert f"`{purpose.legal_basis}`, {legal_basis_meaning(purpose.legal_basis, lang)}" in section  # type: ignore[arg-type]
        assert purpose.dpv_purpose in section
        for recipient in purpose.recipients:
            assert recipient in section


def test_the_controller_and_dpo_come_first(policy: Policy) -> None:
    register = processing_register(policy)
    head = register.split("## Processing activities")[0]
    controller = policy.broker.controller

    assert register.startswith("# Record of processing activities: Métropole de Lyon\n")
    for value in (controller.name, controller.address, controller.dpo_email, controller.supervisory_authority):
        assert value in head
    assert "- **Data protection officer:** dpo@lyon.example" in head


def test_each_activity_states_every_art_30_item(policy: Policy) -> None:
    register = processing_register(policy)
    labels = ["Purpose", "Legal basis", "Categories of data subjects", "Categories of personal data",
              "Special categories (Art 9)", "Recipients", "Transfers to third countries", "Retention",
              "Security measures", "Automated decision-making (Art 22)"]
    for purpose in policy.purposes:
        section = activity(register, purpose.id)
        for label in labels:
            assert f"- **{label}:** " in section, (purpose.id, label)
        assert "- **Transfers to third countries:** none; data and results stay in the European Union" in section
        assert "pseudonymisation, encryption, differential privacy" in section


def test_personal_data_lists_only_the_fields_the_purpose_uses(policy: Policy) -> None:
    register = processing_register(policy)
    air, health = activity(register, "air-quality-study"), activity(register, "public-health-study")

    assert "(`pm25`, µg/m³)" in air and "(`outdoor_minutes`, min)" in air
    assert "respiratory_symptoms" not in air
    assert "Reported respiratory symptoms (health data) (`respiratory_symptoms`)" in health


def test_special_categories_and_age_are_spelled_out(policy: Policy) -> None:
    register = processing_register(policy)
    health, parking = activity(register, "public-health-study"), activity(register, "parking-availability")

    assert "- **Special categories (Art 9):** yes: `dpv:Health`" in health
    assert "explicit consent in the portal, aged 18 or over" in health
    assert "- **Special categories (Art 9):** no" in parking
    assert "consent in the portal, aged 15 or over" in parking


def test_a_public_task_is_not_described_as_consent(policy: Policy) -> None:
    section = activity(processing_register(policy), "traffic-planning")

    assert "`eu-gdpr:A6-1-e`, public task" in section
    assert "not based on consent" in section
    assert "consent valid" not in section
    assert "- **Retention:** results 60 months; records in the vault `trips` 24 months, " \
           "`parking-sessions` 12 months\n" in section


def test_retention_budgets_and_open_data_follow_the_policy(policy: Policy) -> None:
    section = activity(processing_register(policy), "energy-renovation")

    assert "- **Retention:** results 36 months; records in the vault `household-energy` 36 months; " \
           "consent valid 24 months, then asked again" in section
    assert "(ε ≤ 0.5 per query, 4 per service and 4 in all per year and dataset)" in section
    assert "- **Automated decision-making (Art 22):** no; " in section
    assert "- **Open data:** not published" in section


def test_the_french_register_reads_as_french(policy: Policy) -> None:
    register = processing_register(policy, lang="fr")
    section = activity(register, "traffic-planning")

    assert register.startswith("# Registre des activités de traitement : Métropole de Lyon\n")
    assert "- **Délégué à la protection des données :** dpo@lyon.example" in register
    assert "`eu-gdpr:A6-1-e`, mission d’intérêt public" in section
    assert "(ε ≤ 0,5 par requête, 4 par service et 6 au total par an et par jeu de données)" in section
    assert "- **Transferts hors de l’Union européenne :** aucun" in section


def test_a_changed_policy_changes_the_register(policy: Policy) -> None:
    purposes = [p.model_copy(update={"retention_months": 6}) if p.id == "parking-availability" else p
                for p in policy.purposes]
    changed = policy.model_copy(update={"purposes": purposes})

    assert "- **Retention:** results 6 months;" in activity(processing_register(changed), "parking-availability")
    assert processing_register(policy) == processing_register(policy)


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_every_legal_basis_has_a_meaning_in_both_languages(lang: str) -> None:
    meanings = {code: legal_basis_meaning(code, lang) for code in LEGAL_BASES}  # type: ignore[arg-type]
    assert all(meanings.values())
    assert len(set(meanings.values())) == len(LEGAL_BASES)


def test_an_unknown_language_is_refused(policy: Policy) -> None:
    with pytest.raises(ValueError, match="unknown language 'de'"):
        processing_register(policy, lang="de")  # type: ignore[arg-type]

"""The shipped policies, and a catalogue of mistakes to make in a copy of them.

Each mistake changes one file's parsed YAML in place and returns the exact line the loader must report for
it, computing indices from the document so that reordering the shipped files never breaks a test.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.policy import Policy, PolicyError, load_policy
from broker.policy.loader import FILES

POLICIES = Path(__file__).resolve().parents[2] / "policies"
Document = dict[str, Any]
Mistake = tuple[str, Callable[[Document], str]]


def copy_policies(target: Path) -> Path:
    """Copy the four shipped files into ``target``, for a test to break."""
    for name in FILES:
        shutil.copy(POLICIES / name, target / name)
    return target


def with_ids_renamed(target: Path, renames: dict[str, str]) -> Policy:
    """The shipped policies copied into ``target`` with ids renamed (old → new, in every file), loaded."""
    copy_policies(target)
    for name in FILES:
        path = target / name
        text = path.read_text(encoding="utf-8")
        for old, new in renames.items():
            text = text.replace(old, new)
        path.write_text(text, encoding="utf-8")
    return load_policy(target)


def edit(directory: Path, name: str, change: Callable[[Document], Any]) -> Any:
    """Apply ``change`` to one policy file's YAML and write it back; return what ``change`` returned."""
    path = directory / name
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    result = change(document)
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return result


def errors_of(directory: Path) -> list[str]:
    """The error lines of loading ``directory``, which must fail."""
    with pytest.raises(PolicyError) as caught:
        load_policy(directory)
    return caught.value.errors


def at(entries: list[Document], ident: str) -> int:
    """The index of the entry with this id."""
    return next(i for i, entry in enumerate(entries) if entry["id"] == ident)


def shipped_index(key: str, ident: str) -> int:
    """Where ``ident`` sits in the shipped ``<key>.yaml``."""
    return at(shipped(key)[key], ident)


def shipped(key: str) -> Document:
    """The parsed shipped ``<key>.yaml``."""
    return yaml.safe_load((POLICIES / f"{key}.yaml").read_text(encoding="utf-8"))


# --- cross-references: (file to change, change returning the expected line) ------------------------------


def unknown_dataset(doc: Document) -> str:
    i = at(doc["purposes"], "parking-availability")
    doc["purposes"][i]["datasets"][0]["dataset"] = "parking"
    return f"purposes.yaml: purposes[{i}].datasets[0].dataset: unknown dataset 'parking'"


def unknown_field(doc: Document) -> str:
    i = at(doc["purposes"], "air-quality-study")
    doc["purposes"][i]["datasets"][0]["fields"].append("pm10")
    return f"purposes.yaml: purposes[{i}].datasets[0].fields[3]: dataset 'air-exposure' has no field 'pm10'"


def group_by_unknown_field(doc: Document) -> str:
    i = at(doc["purposes"], "energy-renovation")
    doc["purposes"][i]["datasets"][0]["group_by"] = ["district", "postcode"]
    return f"purposes.yaml: purposes[{i}].datasets[0].group_by[1]: dataset 'household-energy' has no field 'postcode'"


def group_by_not_public(doc: Document) -> str:
    i = at(doc["purposes"], "parking-availability")
    doc["purposes"][i]["datasets"][0]["group_by"].append("duration_min")
    return (f"purposes.yaml: purposes[{i}].datasets[0].group_by[2]: "
            "'duration_min' is not a group_by key of dataset 'parking-sessions'")


def statistics_without_numeric_field(doc: Document) -> str:
    i = at(doc["purposes"], "traffic-planning")
    doc["purposes"][i]["datasets"][0]["fields"] = ["mode", "district"]
    return (f"purposes.yaml: purposes[{i}].datasets[0].statistics: sum, mean need at least one numeric field "
            "in fields, and none of mode, district is numeric")


def dataset_used_twice(doc: Document) -> str:
    i = at(doc["purposes"], "air-quality-study")
    uses = doc["purposes"][i]["datasets"]
    uses.append(copy.deepcopy(uses[0]))
    return f"purposes.yaml: purposes[{i}].datasets[1].dataset: dataset 'air-exposure' is already used in datasets[0]"


def unknown_domain(doc: Document) -> str:
    i = at(doc["datasets"], "trips")
    k = next(k for k, f in enumerate(doc["datasets"][i]["fields"]) if f["name"] == "mode")
    doc["datasets"][i]["fields"][k]["domain"] = "transport"
    return (f"datasets.yaml: datasets[{i}].fields[{k}].domain: unknown domain 'transport'; "
            "broker.yaml declares: districts, modes")


def unknown_provider(doc: Document) -> str:
    i = at(doc["datasets"], "trips")
    doc["datasets"][i]["provider"] = "sensor-network"
    return f"datasets.yaml: datasets[{i}].provider: unknown service 'sensor-network'"


def provider_is_a_service(doc: Document) -> str:
    i = at(doc["datasets"], "parking-sessions")
    doc["datasets"][i]["provider"] = "mobility"
    return f"datasets.yaml: datasets[{i}].provider: service 'mobility' is not a provider (kind: service)"


def provider_does_not_ingest(doc: Document) -> str:
    doc["services"][at(doc["services"], "metering-platform")]["ingest"].remove("trips")
    # The mistake is in services.yaml, but it is the dataset's provider claim that no longer holds.
    i = shipped_index("datasets", "trips")
    return f"datasets.yaml: datasets[{i}].provider: provider 'metering-platform' does not list 'trips' under ingest"


def service_unknown_purpose(doc: Document) -> str:
    i = at(doc["services"], "mobility")
    doc["services"][i]["purposes"].append("traffic")
    return f"services.yaml: services[{i}].purposes[2]: unknown purpose 'traffic'"


def provider_unknown_dataset(doc: Document) -> str:
    i = at(doc["services"], "metering-platform")
    doc["services"][i]["ingest"].append("noise")
    return f"services.yaml: services[{i}].ingest[4]: unknown dataset 'noise'"


def duplicate(key: str, ident: str) -> Callable[[Document], str]:
    def change(doc: Document) -> str:
        entries = doc[key]
        entries.append(copy.deepcopy(entries[at(entries, ident)]))
        first, last = at(entries, ident), len(entries) - 1
        return f"{key}.yaml: {key}[{last}].id: duplicate id {ident!r}, already used by {key}[{first}]"
    return change


def ids_alike_in_sql(doc: Document) -> str:
    entries = doc["purposes"]
    first = at(entries, "energy-renovation")
    twin = copy.deepcopy(entries[first])
    twin["id"] = "energy_renovation"
    entries.append(twin)
    return (f"purposes.yaml: purposes[{len(entries) - 1}].id: id 'energy_renovation' differs from purposes[{first}] "
            "('energy-renovation') only by '-' and '_', which name the same database tables")


CROSS_REFERENCES: dict[str, Mistake] = {
    "unknown dataset": ("purposes.yaml", unknown_dataset),
    "unknown field": ("purposes.yaml", unknown_field),
    "group_by names no field": ("purposes.yaml", group_by_unknown_field),
    "group_by not a public key": ("purposes.yaml", group_by_not_public),
    "statistics need a numeric field": ("purposes.yaml", statistics_without_numeric_field),
    "dataset used twice": ("purposes.yaml", dataset_used_twice),
    "unknown domain": ("datasets.yaml", unknown_domain),
    "unknown provider": ("datasets.yaml", unknown_provider),
    "provider is a service": ("datasets.yaml", provider_is_a_service),
    "provider does not ingest": ("services.yaml", provider_does_not_ingest),
    "service names unknown purpose": ("services.yaml", service_unknown_purpose),
    "provider ingests unknown dataset": ("services.yaml", provider_unknown_dataset),
    "duplicate purpose id": ("purposes.yaml", duplicate("purposes", "energy-renovation")),
    "duplicate dataset id": ("datasets.yaml", duplicate("datasets", "trips")),
    "duplicate service id": ("services.yaml", duplicate("services", "mobility")),
    "purpose ids alike in SQL": ("purposes.yaml", ids_alike_in_sql),
}


# --- each file on its own: schema errors, with pydantic's location as a path ------------------------------


def numeric_without_bounds(doc: Document) -> str:
    i = at(doc["datasets"], "household-energy")
    k = next(k for k, f in enumerate(doc["datasets"][i]["fields"]) if f["name"] == "energy_wh")
    del doc["datasets"][i]["fields"][k]["lower"]
    return f"datasets.yaml: datasets[{i}].fields[{k}]: a numeric field needs lower and upper bounds"


def category_with_both(doc: Document) -> str:
    i = at(doc["datasets"], "parking-sessions")
    k = next(k for k, f in enumerate(doc["datasets"][i]["fields"]) if f["name"] == "zone")
    doc["datasets"][i]["fields"][k]["domain"] = "districts"
    return f"datasets.yaml: datasets[{i}].fields[{k}]: a category field needs exactly one of categories or domain"


def time_field_not_timestamp(doc: Document) -> str:
    i = at(doc["datasets"], "trips")
    doc["datasets"][i]["time_field"] = "duration_min"
    return f"datasets.yaml: datasets[{i}]: time_field 'duration_min' must name a timestamp field"


def budget_out_of_order(doc: Document) -> str:
    i = at(doc["purposes"], "energy-renovation")
    doc["purposes"][i]["budget"]["per_query_epsilon"] = 5.0
    return f"purposes.yaml: purposes[{i}].budget: per_query_epsilon exceeds per_service_epsilon"


def unknown_legal_basis(doc: Document) -> str:
    i = at(doc["purposes"], "parking-availability")
    doc["purposes"][i]["legal_basis"] = "consent"
    return (f"purposes.yaml: purposes[{i}].legal_basis: unknown legal basis 'consent'; expected one of "
            "eu-gdpr:A6-1-a, eu-gdpr:A6-1-b, eu-gdpr:A6-1-c, eu-gdpr:A6-1-d, eu-gdpr:A6-1-e, eu-gdpr:A6-1-f, "
            "eu-gdpr:A9-2-a, eu-gdpr:A9-2-g, eu-gdpr:A9-2-i, eu-gdpr:A9-2-j")


def special_category_on_plain_consent(doc: Document) -> str:
    i = at(doc["purposes"], "public-health-study")
    doc["purposes"][i]["legal_basis"] = "eu-gdpr:A6-1-a"
    return f"purposes.yaml: purposes[{i}]: a special-category purpose needs an Art 9(2) basis such as eu-gdpr:A9-2-a"


def special_category_without_kinds(doc: Document) -> str:
    i = at(doc["purposes"], "public-health-study")
    doc["purposes"][i]["special_category_kinds"] = []
    return f"purposes.yaml: purposes[{i}]: a special-category purpose needs special_category_kinds, e.g. [dpv:Health]"


def money_without_amount(doc: Document) -> str:
    i = at(doc["purposes"], "air-quality-study")
    del doc["purposes"][i]["returns"][0]["amount_cents"]
    return f"purposes.yaml: purposes[{i}].returns[0]: a money or voucher return needs amount_cents"


def missing_key(doc: Document) -> str:
    i = at(doc["purposes"], "traffic-planning")
    del doc["purposes"][i]["retention_months"]
    return f"purposes.yaml: purposes[{i}].retention_months: missing required key"


def wrong_type(doc: Document) -> str:
    i = at(doc["purposes"], "traffic-planning")
    doc["purposes"][i]["version"] = "two"
    return (f"purposes.yaml: purposes[{i}].version: "
            "Input should be a valid integer, unable to parse string as an integer")


def bad_dpv_code(doc: Document) -> str:
    i = at(doc["purposes"], "traffic-planning")
    doc["purposes"][i]["dpv_purpose"] = "Public Benefit"
    return f"purposes.yaml: purposes[{i}].dpv_purpose: 'Public Benefit' does not match the pattern ^dpv:[A-Za-z]+$"


def nested_unknown_key(doc: Document) -> str:
    i = at(doc["purposes"], "energy-renovation")
    doc["purposes"][i]["budget"]["epsilon"] = 1.0
    return f"purposes.yaml: purposes[{i}].budget.epsilon: unknown key"


def misspelt_special_category(doc: Document) -> str:
    i = at(doc["purposes"], "air-quality-study")
    doc["purposes"][i]["special_categroy"] = True
    return f"purposes.yaml: purposes[{i}].special_categroy: unknown key"


def controller_unknown_key(doc: Document) -> str:
    doc["broker"]["controller"]["phone"] = "+33 4 00 00 00 00"
    return "broker.yaml: broker.controller.phone: unknown key"


def bad_domain_name(doc: Document) -> str:
    doc["broker"]["domains"]["Heating Types"] = ["gas"]
    return ("broker.yaml: broker.domains['Heating Types']: 'Heating Types' is not an identifier: lowercase letters, "
            "digits, '-' or '_', starting with a letter, 2 to 63 characters")


def field_name_with_a_minus(doc: Document) -> str:
    i = at(doc["datasets"], "trips")
    k = next(k for k, f in enumerate(doc["datasets"][i]["fields"]) if f["name"] == "distance_km")
    doc["datasets"][i]["fields"][k]["name"] = "distance-km"
    return (f"datasets.yaml: datasets[{i}].fields[{k}].name: 'distance-km' is not a field name: lowercase letters, "
            "digits or '_', starting with a letter, 2 to 48 characters (it names database columns)")


def provider_with_purposes(doc: Document) -> str:
    i = at(doc["services"], "metering-platform")
    doc["services"][i]["purposes"] = ["traffic-planning"]
    return f"services.yaml: services[{i}]: a provider only ingests; list purposes on a service"


def extra_top_level_key(doc: Document) -> str:
    doc["version"] = 2
    return "services.yaml: version: unknown key"


def entry_not_a_mapping(doc: Document) -> str:
    doc["purposes"].append("energy-renovation")
    last = len(doc["purposes"]) - 1
    return f"purposes.yaml: purposes[{last}]: Input should be a valid dictionary or instance of Purpose"


def not_a_list(doc: Document) -> str:
    doc["datasets"] = {"trips": {}}
    return "datasets.yaml: datasets: expected a list of datasets"


SCHEMA_ERRORS: dict[str, Mistake] = {
    "numeric field without bounds": ("datasets.yaml", numeric_without_bounds),
    "category field with categories and domain": ("datasets.yaml", category_with_both),
    "time_field not a timestamp": ("datasets.yaml", time_field_not_timestamp),
    "budget out of order": ("purposes.yaml", budget_out_of_order),
    "unknown legal basis": ("purposes.yaml", unknown_legal_basis),
    "special category on Art 6 consent": ("purposes.yaml", special_category_on_plain_consent),
    "special category without kinds": ("purposes.yaml", special_category_without_kinds),
    "money return without amount": ("purposes.yaml", money_without_amount),
    "missing key": ("purposes.yaml", missing_key),
    "wrong type": ("purposes.yaml", wrong_type),
    "bad DPV code": ("purposes.yaml", bad_dpv_code),
    "nested unknown key": ("purposes.yaml", nested_unknown_key),
    "misspelt special_category": ("purposes.yaml", misspelt_special_category),
    "controller unknown key": ("broker.yaml", controller_unknown_key),
    "domain name not an identifier": ("broker.yaml", bad_domain_name),
    "field name with a minus": ("datasets.yaml", field_name_with_a_minus),
    "provider with purposes": ("services.yaml", provider_with_purposes),
    "extra top-level key": ("services.yaml", extra_top_level_key),
    "entry not a mapping": ("purposes.yaml", entry_not_a_mapping),
    "list expected": ("datasets.yaml", not_a_list),
}

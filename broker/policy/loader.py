"""Read ``policies/*.yaml``, check them and build one :class:`~broker.policy.schema.Policy`.

A policy change is reviewed like code, so the check reports *every* mistake at once, each as
``<file>: <path>: <message>`` (e.g. ``purposes.yaml: purposes[2].datasets[0].dataset: unknown dataset
'trafic'``): a reviewer fixes them in one pass instead of one per run. Each file is validated on its own,
item by item, so one bad purpose does not hide the others; then the references between files are checked
here, because no single file can see them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785
import yaml
from pydantic import BaseModel, ValidationError

from broker.policy.schema import BrokerRules, Dataset, FieldType, Policy, Purpose, Service, Statistic

# The files in the order they are reported, each with its single top-level key and the model of one entry.
FILES: dict[str, tuple[str, type[BaseModel]]] = {
    "broker.yaml": ("broker", BrokerRules),
    "purposes.yaml": ("purposes", Purpose),
    "datasets.yaml": ("datasets", Dataset),
    "services.yaml": ("services", Service),
}
NUMERIC_STATISTICS = (Statistic.sum, Statistic.mean, Statistic.quantile, Statistic.histogram)
_IDENTIFIER = r"^[a-z][a-z0-9_-]{1,62}$"
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class PolicyError(Exception):
    """The policy files are wrong; ``errors`` holds every problem, one formatted line each."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__(f"{len(errors)} policy error(s):\n" + "\n".join(errors))


class _StrictYamlLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys.

    PyYAML keeps the last of two equal keys without a word; in a policy that could turn a reviewed
    ``special_category: true`` into ``false`` further down the same mapping, unseen in review.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` is resolved by the base class
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable key: the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


@dataclass
class _Loaded:
    """What came out of one file: the entries that validated, by their index in the file."""

    entries: dict[int, Any] = field(default_factory=dict)
    clean: bool = True


def format_location(loc: Sequence[Any]) -> str:
    """Turn a pydantic location tuple into ``purposes[2].datasets[0].dataset``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]":  # pydantic's marker for "the key itself, not its value"
            continue
        elif isinstance(part, str) and _PLAIN_KEY.match(part):
            path += f".{part}" if path else part
        else:
            path += f"[{part!r}]"
    return path


def _message(error: Any) -> str:
    """Pydantic's message, reworded where the original would puzzle a city's policy reviewer."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "missing required key"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == _IDENTIFIER:
        return (f"{error['input']!r} is not an identifier: lowercase letters, digits, '-' or '_', "
                "starting with a letter, 2 to 63 characters")
    if kind == "string_pattern_mismatch":
        return f"{error['input']!r} does not match the pattern {ctx.get('pattern')}"
    message: str = error["msg"]
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _read(path: Path, key: str, errors: list[str]) -> tuple[bool, Any]:
    """``(True, value under key)`` for a readable file, else ``(False, None)`` after recording why not."""
    name = path.name
    if not path.is_file():
        errors.append(f"{name}: {key}: file not found in {path.parent}")
        return False, None
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictYamlLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else key
        errors.append(f"{name}: {where}: {exc.problem or exc.context or 'invalid YAML'}")
        return False, None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        errors.append(f"{name}: {key}: invalid YAML: {exc}")
        return False, None
    if not isinstance(document, dict) or key not in document:
        errors.append(f"{name}: {key}: the file must be a mapping with the single top-level key {key!r}")
        return False, None
    errors.extend(f"{name}: {format_location([extra])}: unknown key" for extra in document if extra != key)
    return True, document[key]


def _validate(name: str, loc: tuple[int | str, ...], model: type[BaseModel], raw: Any, errors: list[str]) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors.extend(f"{name}: {format_location(loc + tuple(e['loc']))}: {_message(e)}" for e in exc.errors())
        return None


def _load_file(directory: Path, name: str, errors: list[str]) -> _Loaded:
    key, model = FILES[name]
    before = len(errors)
    loaded = _Loaded()
    readable, raw = _read(directory / name, key, errors)
    if not readable:
        loaded.clean = False
        return loaded
    if key == "broker":
        entry = _validate(name, (key,), model, raw, errors)
        if entry is not None:
            loaded.entries[0] = entry
    elif not isinstance(raw, list):
        errors.append(f"{name}: {key}: expected a list of {key}")
    else:
        for index, item in enumerate(raw):
            entry = _validate(name, (key, index), model, item, errors)
            if entry is not None:
                loaded.entries[index] = entry
    loaded.clean = len(errors) == before
    # A duplicate id is reported but leaves the file clean: references to it still resolve (to the first).
    if isinstance(raw, list):
        errors.extend(_duplicate_ids(name, key, raw))
    return loaded


def _duplicate_ids(name: str, key: str, raw: list[Any]) -> Iterable[str]:
    first: dict[Any, int] = {}
    for index, item in enumerate(raw):
        ident = item.get("id") if isinstance(item, dict) else None
        if not isinstance(ident, str):
            continue
        if ident in first:
            yield f"{name}: {key}[{index}].id: duplicate id {ident!r}, already used by {key}[{first[ident]}]"
        else:
            first.setdefault(ident, index)


def _check_purposes(purposes: dict[int, Purpose], datasets: dict[str, Dataset]) -> Iterable[str]:
    for i, purpose in purposes.items():
        used: dict[str, int] = {}
        for j, use in enumerate(purpose.datasets):
            at = f"purposes.yaml: purposes[{i}].datasets[{j}]"
            if use.dataset in used:
                yield f"{at}.dataset: dataset {use.dataset!r} is already used in datasets[{used[use.dataset]}]"
                continue
            used[use.dataset] = j
            dataset = datasets.get(use.dataset)
            if dataset is None:
                yield f"{at}.dataset: unknown dataset {use.dataset!r}"
                continue
            for k, name in enumerate(use.fields):
                if dataset.field(name) is None:
                    yield f"{at}.fields[{k}]: dataset {dataset.id!r} has no field {name!r}"
            for k, name in enumerate(use.group_by):
                if dataset.field(name) is None:
                    yield f"{at}.group_by[{k}]: dataset {dataset.id!r} has no field {name!r}"
                elif name not in dataset.group_by:
                    yield f"{at}.group_by[{k}]: {name!r} is not a group_by key of dataset {dataset.id!r}"
            numeric = [s.value for s in NUMERIC_STATISTICS if s in use.statistics]
            fields = [dataset.field(name) for name in use.fields]
            if numeric and not any(f and f.type in (FieldType.integer, FieldType.decimal) for f in fields):
                yield (f"{at}.statistics: {', '.join(numeric)} need at least one numeric field in fields, "
                       f"and none of {', '.join(use.fields)} is numeric")


def _check_datasets(datasets: dict[int, Dataset], domains: dict[str, list[str]] | None,
                    services: dict[str, Service] | None) -> Iterable[str]:
    for i, dataset in datasets.items():
        at = f"datasets.yaml: datasets[{i}]"
        for k, f in enumerate(dataset.fields):
            if domains is not None and f.domain is not None and f.domain not in domains:
                known = ", ".join(sorted(domains)) or "none"
                yield f"{at}.fields[{k}].domain: unknown domain {f.domain!r}; broker.yaml declares: {known}"
        if services is None:
            continue
        provider = services.get(dataset.provider)
        if provider is None:
            yield f"{at}.provider: unknown service {dataset.provider!r}"
        elif provider.kind != "provider":
            yield f"{at}.provider: service {provider.id!r} is not a provider (kind: {provider.kind})"
        elif dataset.id not in provider.ingest:
            yield f"{at}.provider: provider {provider.id!r} does not list {dataset.id!r} under ingest"


def _check_services(services: dict[int, Service], purposes: set[str] | None,
                    datasets: set[str] | None) -> Iterable[str]:
    for i, service in services.items():
        at = f"services.yaml: services[{i}]"
        for k, purpose_id in enumerate(service.purposes):
            if purposes is not None and purpose_id not in purposes:
                yield f"{at}.purposes[{k}]: unknown purpose {purpose_id!r}"
        for k, dataset_id in enumerate(service.ingest):
            if datasets is not None and dataset_id not in datasets:
                yield f"{at}.ingest[{k}]: unknown dataset {dataset_id!r}"


def _by_id(loaded: _Loaded) -> dict[str, Any] | None:
    """Entries by id, or None when the file had errors.

    References into a file with errors are not checked: an entry that failed to validate would show up
    as a flood of "unknown" errors elsewhere, hiding the one mistake that matters.
    """
    if not loaded.clean:
        return None
    by_id: dict[str, Any] = {}
    for entry in loaded.entries.values():
        by_id.setdefault(entry.id, entry)
    return by_id


def _cross_references(files: dict[str, _Loaded]) -> list[str]:
    broker: BrokerRules | None = files["broker.yaml"].entries.get(0) if files["broker.yaml"].clean else None
    purposes = _by_id(files["purposes.yaml"])
    datasets = _by_id(files["datasets.yaml"])
    services = _by_id(files["services.yaml"])
    errors: list[str] = []
    if datasets is not None:
        errors.extend(_check_purposes(files["purposes.yaml"].entries, datasets))
    errors.extend(_check_datasets(files["datasets.yaml"].entries, broker.domains if broker else None, services))
    errors.extend(_check_services(files["services.yaml"].entries, None if purposes is None else set(purposes),
                                  None if datasets is None else set(datasets)))
    return errors


def load_policy(directory: Path) -> Policy:
    """Load and check the four policy files in ``directory``; raise :class:`PolicyError` listing every error."""
    directory = Path(directory)
    errors: list[str] = []
    files = {name: _load_file(directory, name, errors) for name in FILES}
    errors.extend(_cross_references(files))
    if errors:
        raise PolicyError(errors)
    return Policy(
        broker=files["broker.yaml"].entries[0],
        purposes=list(files["purposes.yaml"].entries.values()),
        datasets=list(files["datasets.yaml"].entries.values()),
        services=list(files["services.yaml"].entries.values()),
    )


def policy_digest(policy: Policy) -> str:
    """SHA-256 (hex) of the policy as RFC 8785 canonical JSON.

    Canonical JSON makes the digest depend on the policy's meaning, not on YAML layout, comments or key
    order, so a reformatted file keeps its digest while any real change gives a new one.
    """
    return hashlib.sha256(rfc8785.dumps(policy.model_dump(mode="json"))).hexdigest()

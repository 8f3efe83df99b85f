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

from broker.policy.schema import (
    FIELD_NAME_PATTERN,
    IDENTIFIER_PATTERN,
    BrokerRules,
    Dataset,
    DatasetUse,
    FieldType,
    Policy,
    Purpose,
    Service,
    Statistic,
)

# The files in the order they are reported, each with its single top-level key and the model of one entry.
FILES: dict[str, tuple[str, type[BaseModel]]] = {
    "broker.yaml": ("broker", BrokerRules),
    "purposes.yaml": ("purposes", Purpose),
    "datasets.yaml": ("datasets", Dataset),
    "services.yaml": ("services", Service),
}
NUMERIC_STATISTICS = (Statistic.sum, Statistic.mean, Statistic.quantile, Statistic.histogram)
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
    """What came out of one file.

    ``known`` holds every id the file declares (for broker.yaml: every domain name), whether or not its
    entry validated, or None when the file could not be read at all. A reference is "unknown" only if it
    is missing from ``known``: an entry that merely failed validation has already been reported, and
    calling every reference to it unknown would bury that one mistake under a flood of false ones.
    """

    entries: dict[int, Any] = field(default_factory=dict)
    known: set[str] | None = None

    def get(self, ident: str) -> Any | None:
        """The first entry with this id that validated."""
        return next((e for e in self.entries.values() if e.id == ident), None)


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
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == IDENTIFIER_PATTERN:
        return (f"{error['input']!r} is not an identifier: lowercase letters, digits, '-' or '_', "
                "starting with a letter, 2 to 63 characters")
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == FIELD_NAME_PATTERN:
        return (f"{error['input']!r} is not a field name: lowercase letters, digits or '_', "
                "starting with a letter, 2 to 48 characters (it names database columns)")
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
    loaded = _Loaded()
    readable, raw = _read(directory / name, key, errors)
    if not readable:
        return loaded
    if key == "broker":
        # No `domains:` at all means none are declared; a malformed one is reported by validation instead.
        domains = raw.get("domains", {}) if isinstance(raw, dict) else None
        loaded.known = {str(d) for d in domains} if isinstance(domains, dict) else None
        entry = _validate(name, (key,), model, raw, errors)
        if entry is not None:
            loaded.entries[0] = entry
    elif not isinstance(raw, list):
        errors.append(f"{name}: {key}: expected a list of {key}")
    else:
        loaded.known = {item["id"] for item in raw if isinstance(item, dict) and isinstance(item.get("id"), str)}
        for index, item in enumerate(raw):
            entry = _validate(name, (key, index), model, item, errors)
            if entry is not None:
                loaded.entries[index] = entry
        errors.extend(_duplicate_ids(name, key, raw))
    return loaded


def _duplicate_ids(name: str, key: str, raw: list[Any]) -> Iterable[str]:
    """Ids used twice; for datasets and purposes also ids that differ only by '-' and '_', since both
    spell the same database names (``vault_<id>``, ``consent__<id>__state``)."""
    same_sql = key in ("datasets", "purposes")
    first: dict[Any, tuple[int, str]] = {}
    for index, item in enumerate(raw):
        ident = item.get("id") if isinstance(item, dict) else None
        if not isinstance(ident, str):
            continue
        seen = ident.replace("-", "_") if same_sql else ident
        if seen not in first:
            first[seen] = (index, ident)
            continue
        at, other = first[seen]
        if other == ident:
            yield f"{name}: {key}[{index}].id: duplicate id {ident!r}, already used by {key}[{at}]"
        else:
            yield (f"{name}: {key}[{index}].id: id {ident!r} differs from {key}[{at}] ({other!r}) only by "
                   "'-' and '_', which name the same database tables")


def _check_purposes(purposes: _Loaded, datasets: _Loaded) -> Iterable[str]:
    if datasets.known is None:
        return
    for i, purpose in purposes.entries.items():
        used: dict[str, int] = {}
        for j, use in enumerate(purpose.datasets):
            at = f"purposes.yaml: purposes[{i}].datasets[{j}]"
            if use.dataset in used:
                yield f"{at}.dataset: dataset {use.dataset!r} is already used in datasets[{used[use.dataset]}]"
                continue
            used[use.dataset] = j
            if use.dataset not in datasets.known:
                yield f"{at}.dataset: unknown dataset {use.dataset!r}"
                continue
            dataset: Dataset | None = datasets.get(use.dataset)
            if dataset is not None:
                yield from _check_use(at, use, dataset)


def _check_use(at: str, use: DatasetUse, dataset: Dataset) -> Iterable[str]:
    """The fields, group-by keys and statistics of one purpose's use of one dataset."""
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
    if numeric and not any(f is not None and f.type in (FieldType.integer, FieldType.decimal) for f in fields):
        yield (f"{at}.statistics: {', '.join(numeric)} need at least one numeric field in fields, "
               f"and none of {', '.join(use.fields)} is numeric")


def _check_datasets(datasets: _Loaded, broker: _Loaded, services: _Loaded) -> Iterable[str]:
    for i, dataset in datasets.entries.items():
        at = f"datasets.yaml: datasets[{i}]"
        for k, f in enumerate(dataset.fields):
            if broker.known is not None and f.domain is not None and f.domain not in broker.known:
                declared = ", ".join(sorted(broker.known)) or "none"
                yield f"{at}.fields[{k}].domain: unknown domain {f.domain!r}; broker.yaml declares: {declared}"
        if services.known is None:
            continue
        if dataset.provider not in services.known:
            yield f"{at}.provider: unknown service {dataset.provider!r}"
            continue
        provider: Service | None = services.get(dataset.provider)
        if provider is None:
            continue
        if provider.kind != "provider":
            yield f"{at}.provider: service {provider.id!r} is not a provider (kind: {provider.kind})"
        elif dataset.id not in provider.ingest:
            yield f"{at}.provider: provider {provider.id!r} does not list {dataset.id!r} under ingest"


def _check_services(services: _Loaded, purposes: _Loaded, datasets: _Loaded) -> Iterable[str]:
    for i, service in services.entries.items():
        at = f"services.yaml: services[{i}]"
        for k, purpose_id in enumerate(service.purposes):
            if purposes.known is not None and purpose_id not in purposes.known:
                yield f"{at}.purposes[{k}]: unknown purpose {purpose_id!r}"
        for k, dataset_id in enumerate(service.ingest):
            if datasets.known is not None and dataset_id not in datasets.known:
                yield f"{at}.ingest[{k}]: unknown dataset {dataset_id!r}"


def _cross_references(files: dict[str, _Loaded]) -> list[str]:
    broker, purposes = files["broker.yaml"], files["purposes.yaml"]
    datasets, services = files["datasets.yaml"], files["services.yaml"]
    return [
        *_check_purposes(purposes, datasets),
        *_check_datasets(datasets, broker, services),
        *_check_services(services, purposes, datasets),
    ]


def load_policy(directory: Path) -> Policy:
    """Load and check the four policy files in ``directory``; raise :class:`PolicyError` listing every error."""
    directory = Path(directory)
    errors: list[str] = []
    files = {name: _load_file(directory, name, errors) for name in FILES}
    errors.extend(_cross_references(files))
    if errors:
        # Grouped by file (stable, so each file's own order stays), as a reviewer fixes one file at a time.
        order = {name: index for index, name in enumerate(FILES)}
        raise PolicyError(sorted(errors, key=lambda line: order.get(line.split(":", 1)[0], len(order))))
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

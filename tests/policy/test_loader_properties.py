"""Properties of the loader over many generated policy files (hypothesis).

Temporary directories are made inside each example rather than taken from ``tmp_path``: a function-scoped
fixture would be shared by every example of one test.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.policy import Purpose, load_policy, policy_digest
from broker.policy.loader import FILES
from broker.policy.schema import Budget, DatasetUse, Return, Text
from tests.policy.policy_files import POLICIES, copy_policies, edit, errors_of, shipped

_SCHEMA_KEYS = {name for model in (Purpose, Text, DatasetUse, Budget, Return) for name in model.model_fields}


def _mappings(node: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """The path to every mapping inside ``node``, ``node`` itself included."""
    found: list[tuple[str | int, ...]] = []
    if isinstance(node, dict):
        found.append(path)
        for key, value in node.items():
            found.extend(_mappings(value, (*path, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_mappings(value, (*path, index)))
    return found


def _expected_path(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    key=st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True).filter(lambda k: k not in _SCHEMA_KEYS),
    value=st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
)
def test_any_unknown_key_anywhere_in_a_purpose_is_reported_with_its_path(data: st.DataObject, key: str,
                                                                          value: Any) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = copy_policies(Path(directory))
        document = shipped("purposes")
        i = data.draw(st.integers(0, len(document["purposes"]) - 1), label="purpose")
        path = data.draw(st.sampled_from(_mappings(document["purposes"][i])), label="mapping")
        node = document["purposes"][i]
        for part in path:
            node = node[part]
        node[key] = value
        (root / "purposes.yaml").write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")

        assert errors_of(root) == [f"purposes.yaml: purposes[{i}]{_expected_path(path)}.{key}: unknown key"]


def _shuffled(node: Any, rng: random.Random) -> Any:
    if isinstance(node, dict):
        items = list(node.items())
        rng.shuffle(items)
        return {key: _shuffled(value, rng) for key, value in items}
    if isinstance(node, list):
        return [_shuffled(value, rng) for value in node]
    return node


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_the_digest_ignores_key_order_and_layout(seed: int) -> None:
    original = policy_digest(load_policy(POLICIES))
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        for name, (key, _) in FILES.items():
            document = _shuffled(shipped(key), rng)
            style = rng.choice([None, True, False])
            (root / name).write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False,
                                                    default_flow_style=style), encoding="utf-8")
        assert policy_digest(load_policy(root)) == original


def test_the_digest_changes_with_any_real_change(tmp_path: Path) -> None:
    policy_dir = copy_policies(tmp_path)
    before = policy_digest(load_policy(policy_dir))
    assert len(before) == 64 and int(before, 16) >= 0
    edit(policy_dir, "purposes.yaml", lambda doc: doc["purposes"][0]["title"].update(en="Traffic planning"))
    after = policy_digest(load_policy(policy_dir))
    assert after != before

"""RFC 9396 OAuth 2.0 Rich Authorization Requests, type ``data-request``.
https://www.rfc-editor.org/rfc/rfc9396

Beside (or instead of) a bare ``purpose:<id>`` scope, a city service may ask for a token narrowed to some
datasets of a purpose and to a ceiling of ε per query::

    authorization_details=[{"type": "data-request", "purpose": "air-quality-study",
                            "datatypes": ["air-exposure"], "actions": ["query"], "epsilon": 0.2}]

* §5: each detail is checked against the client's policy (the service holds the purpose, the datasets are
  the purpose's, ε is within the purpose's ``per_query_epsilon``); anything else answers
  ``invalid_authorization_details``. Unknown types and unknown fields are refused too, never ignored: a
  restriction the broker did not understand must not silently become no restriction.
* §7 and §9.1: what was granted comes back in the token response and sits in the access token as the
  ``authorization_details`` claim; §9.2: introspection shows it.
* ``/v1/queries`` reads the ceiling with :func:`epsilon_ceiling`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from authlib.oauth2.rfc6749 import OAuth2Error
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from broker.oauth.errors import safe_description
from broker.policy import Policy, Service
from broker.scopes import purpose_scope

DATA_REQUEST = "data-request"
#: What a data-request may allow; ``query`` is asking for a DP statistic (POST /v1/queries).
ACTIONS = ("query",)
TYPES_SUPPORTED = [DATA_REQUEST]


class InvalidAuthorizationDetailsError(OAuth2Error):
    """RFC 9396 §5: the authorization details are unknown, malformed or beyond what the client may get."""

    error = "invalid_authorization_details"


class DataRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    type: Literal["data-request"]
    purpose: str = Field(min_length=1, max_length=64)
    datatypes: list[str] = Field(min_length=1, max_length=32, description="Dataset ids of the purpose.")
    actions: list[Literal["query"]] = Field(min_length=1)
    epsilon: float = Field(gt=0, allow_inf_nan=False, description="Most ε one query may spend.")

    def claim(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


_details = TypeAdapter(list[DataRequest])


def parse(text: str | None) -> list[DataRequest]:
    """The ``authorization_details`` form parameter: a JSON array of objects (§2)."""
    if text is None:
        return []
    try:
        details = _details.validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidAuthorizationDetailsError(safe_description(f"malformed authorization_details at {where}: "
                                                      f"{first.get('msg', 'invalid')}")) from exc
    if not details:
        raise InvalidAuthorizationDetailsError("authorization_details is an empty array")
    return details


def check(details: Iterable[DataRequest], service: Service, allowed_scopes: frozenset[str], policy: Policy) -> None:
    """Every detail within the client's policy, or :class:`InvalidAuthorizationDetailsError` naming the first
    one that is not."""
    for detail in details:
        if purpose_scope(detail.purpose) not in allowed_scopes:
            raise InvalidAuthorizationDetailsError(
                safe_description(f"service {service.id} does not hold an active purpose {detail.purpose}"))
        purpose = policy.purpose(detail.purpose)
        if purpose is None:  # allowed_scopes only holds purposes of the policy
            raise InvalidAuthorizationDetailsError(safe_description(f"unknown purpose {detail.purpose}"))
        for dataset in detail.datatypes:
            if purpose.use_of(dataset) is None:
                raise InvalidAuthorizationDetailsError(
                    safe_description(f"dataset {dataset} is not used by purpose {purpose.id}"))
        ceiling = purpose.budget.per_query_epsilon
        if detail.epsilon > ceiling:
            raise InvalidAuthorizationDetailsError(
                safe_description(f"epsilon {detail.epsilon} exceeds the per-query ceiling {ceiling} "
                                 f"of purpose {purpose.id}"))


def epsilon_ceiling(scopes: Iterable[str], details: Sequence[dict[str, Any]], policy: Policy,
                    purpose_id: str, dataset_id: str) -> float | None:
    """The most ε one query on (purpose, dataset) may spend under a token, or None if it may not query it.

    * No ``purpose:<id>`` scope, or a dataset the purpose does not use: None.
    * Authorization details naming the purpose restrict it: only their datatypes, with ``query`` among
      their actions, and their ``epsilon`` (the largest, when several cover the dataset: each detail is a
      grant of its own, RFC 9396 §2). None if none covers the dataset.
    * Without details for the purpose, the policy's ``per_query_epsilon`` applies.

    The result never exceeds the policy's current ``per_query_epsilon``: a policy lowered after the token
    was issued wins at once.
    """
    purpose = policy.purpose(purpose_id)
    if purpose is None or purpose_scope(purpose_id) not in set(scopes) or purpose.use_of(dataset_id) is None:
        return None
    policy_ceiling = purpose.budget.per_query_epsilon
    for_purpose = [d for d in details if d.get("type") == DATA_REQUEST and d.get("purpose") == purpose_id]
    if not for_purpose:
        return policy_ceiling
    covering = [float(d["epsilon"]) for d in for_purpose
                if dataset_id in d.get("datatypes", ()) and "query" in d.get("actions", ())]
    if not covering:
        return None
    return min(max(covering), policy_ceiling)


def form_value(details: Sequence[DataRequest]) -> str:
    """The form parameter for a list of details (what a client sends)."""
    return json.dumps([d.claim() for d in details], separators=(",", ":"))


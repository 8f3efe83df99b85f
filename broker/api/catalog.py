"""The public catalogue: purposes (with returns and budgets) and datasets, straight from the policy."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from broker.api.deps import RuntimeDep

router = APIRouter(tags=["catalogue"])


@router.get("/healthz")
def healthz(runtime: RuntimeDep) -> dict[str, str]:
    with runtime.reader.connect() as connection:
        connection.execute(text("SELECT 1"))
    return {"status": "ok"}


@router.get("/.well-known/jwks.json")
def jwks(runtime: RuntimeDep) -> dict[str, Any]:
    """The broker's public signing keys, for verifying receipts, tokens and checkpoints offline."""
    return runtime.keyring().jwks()


@router.get("/v1/purposes")
def purposes(runtime: RuntimeDep) -> dict[str, Any]:
    policy = runtime.policy
    return {
        "purposes": [
            {
                **purpose.model_dump(mode="json"),
                "takes_consent": purpose.takes_consent,
                "minimum_age": policy.minimum_age(purpose),
            }
            for purpose in policy.purposes
        ]
    }


@router.get("/v1/datasets")
def datasets(runtime: RuntimeDep) -> dict[str, Any]:
    policy = runtime.policy
    domains = policy.broker.domains
    out = []
    for dataset in policy.datasets:
        body = dataset.model_dump(mode="json")
        for field in body["fields"]:
            if field.get("domain"):
                field["values"] = domains.get(field["domain"], [])
        out.append(body)
    return {"datasets": out}

"""One error hierarchy, rendered at the edge as RFC 9457 problem details.

https://www.rfc-editor.org/rfc/rfc9457. Each error class carries a stable ``code`` (the last segment of the
problem ``type`` URI), an HTTP ``status`` and a ``title``; the instance carries a human ``detail`` that never
holds a secret or personal data, and for policy denials the ``reasons``.
"""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://consent-broker.eu/problems/"


class BrokerError(Exception):
    code: str = "internal-error"
    status: int = 500
    title: str = "Internal error"

    def __init__(self, detail: str, *, reasons: list[dict[str, Any]] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.reasons = reasons
        self.extra = extra

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.code

    def problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status, "detail": self.detail}
        if self.reasons is not None:
            body["reasons"] = self.reasons
        body.update(self.extra)
        return body


class NotFound(BrokerError):
    code, status, title = "not-found", 404, "Not found"


class InvalidRequest(BrokerError):
    code, status, title = "invalid-request", 422, "Invalid request"


class Conflict(BrokerError):
    code, status, title = "conflict", 409, "Conflict"


class Forbidden(BrokerError):
    code, status, title = "forbidden", 403, "Forbidden"


class ConsentRuleViolation(BrokerError):
    """A consent change that GDPR's rules refuse (wrong legal basis, missing explicit confirmation, ...)."""

    code, status, title = "consent-refused", 422, "Consent change refused"

    def __init__(self, detail: str, *, rule: str) -> None:
        super().__init__(detail, rule=rule)
        self.rule = rule

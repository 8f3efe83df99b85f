"""What the access log records: the actions, who the actors are, and what each action keeps in ``details``.

Actors (never an email, a name or a citizen's id):

* ``citizen:<pseudonym>``: a citizen (or their guardian, named by their own pseudonym);
* ``service:<service id>``: a city service or a data provider, as the policy names it;
* ``staff:<account id>``: an auditor or an admin logged in to the portal;
* ``operator``: someone at the broker's command line; ``system``: the broker itself (expiry sweep, start-up);
* ``controller``: the controller acting on a consent (revocation);
* ``anonymous``: someone not identified (a failed login for an unknown address).

``details`` per action:

* ``query`` (written by the queries service; one entry per decision, allow and deny): top-level ``purpose``,
  ``dataset``, ``decision``, ``reasons``, ``epsilon`` (ε asked), ``request_hash``, ``result_hash``; in
  ``details`` what ``audit verify`` replays to show no budget account ever went over its cap, and what
  ``/v1/me/accesses`` shows:

  - ``service`` (str): the service id (else taken from ``actor``);
  - ``period`` (str): the budget period the charge went to, e.g. ``2026``, ``2026-Q1``, ``2026-03``;
  - ``epsilon_charged`` (number): ε actually charged to both accounts (0 for a repeat served from its stored
    release); if absent, ``epsilon`` is taken as charged;
  - ``caps`` (object): the caps in force, ``{"per_query": ε, "per_service": ε, "total": ε}``;
  - ``spent`` (object, optional): the accounts' spent ε after this charge, ``{"service": ε, "total": ε}``;
    when present the replay checks its running sums against it;
  - ``statistic`` (str), ``query_id`` (str), ``purpose_version`` (int, optional: the version the cohort's
    consents were for).
* ``consent.changed``: ``subject``, ``purpose``; details ``record_id``, ``state``, ``purpose_version``,
  ``method``, ``expressed_by``, ``previous_record_id``, ``evidence`` (SHA-256 of the receipt payload).
* ``receipt.issued``: ``subject``, ``purpose``; details ``record_id``, ``evidence``, ``kid``.
* ``login``, ``login.failed``, ``logout``: details ``method`` (``password`` | ``oidc`` | ``reauthentication``
  for a password confirmed again before an irreversible act), ``role`` (when the account is known); for
  failures ``reason``: ``unknown-account`` | ``wrong-password`` | ``disabled`` | ``throttled`` (once per actor
  and throttle window) for passwords; for ``oidc`` (a login begun here that failed), ``provider-refused`` |
  ``unverified-answer`` | ``no-id-token`` | ``unverified-email`` | ``staff-account`` | ``disabled``. The email
  typed, the address and the provider's subject are never kept; an unknown account is ``anonymous``. A service
  whose client authentication failed at an OAuth endpoint: method ``client-authentication``, ``client_id``,
  ``endpoint`` (``token`` | ``introspection`` | ``revocation``), reason ``invalid-client``; only for a client id
  the broker knows (the assertion or secret is never kept).
* ``token.issued``, ``token.revoked``: details ``client_id``, ``jti`` (the token's id, not the token),
  ``scopes``, ``expires_at``.
* ``authorization.failed``: details ``resource`` and ``reason``; the identifier asked for is not kept (it is
  free input, and may point at another citizen's record). Written by the portal (a staff account on a
  citizen's page, a non-auditor on the log, a service token on a portal page) and by the bearer-token guard
  (``invalid-token`` or ``insufficient-scope``, with ``required`` scopes and the token's ``jti``). Only a
  refusal that names someone is logged (see :mod:`broker.audit.refusals`).
* ``ingest``: written by the ingest service for each batch.
* ``erasure``: ``subject``; details ``vault_rows`` per dataset.
* ``guardianship.established``, ``guardianship.ended``: ``subject`` (the minor); details ``link_id``,
  ``guardian`` (the guardian's pseudonym) and, when established, ``basis`` (``registry`` | ``staff``).
* ``privacy-cap.changed``: ``subject``; details ``privacy_cap`` (ε per year, null for the policy's default)
  and ``previous`` (likewise).
* ``key.rotated``: details ``created`` and ``retired`` key ids.
* ``housekeeping``: rows of the login machinery deleted once they served their purpose (``consent-broker db
  prune``, :mod:`broker.identity.housekeeping`); details ``pruned`` (table → rows) and ``keep_sessions_days``.
* ``policy.loaded``: details ``policy_digest`` (SHA-256 of the policy's canonical JSON), ``event``
  (``start`` | ``upgrade``), ``purposes`` (id → version: which consents counted from then on).
"""

from __future__ import annotations

from sqlmodel import Session, select

from broker.audit.log import AuditEvent
from broker.identity.models import Account, Citizen
from broker.policy.loader import policy_digest
from broker.policy.schema import Policy

QUERY = "query"
CONSENT_CHANGED = "consent.changed"
RECEIPT_ISSUED = "receipt.issued"
LOGIN = "login"
LOGIN_FAILED = "login.failed"
LOGOUT = "logout"
TOKEN_ISSUED = "token.issued"
TOKEN_REVOKED = "token.revoked"
AUTHORIZATION_FAILED = "authorization.failed"
INGEST = "ingest"
ERASURE = "erasure"
GUARDIANSHIP_ESTABLISHED = "guardianship.established"
GUARDIANSHIP_ENDED = "guardianship.ended"
PRIVACY_CAP_CHANGED = "privacy-cap.changed"
KEY_ROTATED = "key.rotated"
HOUSEKEEPING = "housekeeping"
POLICY_LOADED = "policy.loaded"

ANONYMOUS = "anonymous"
SYSTEM = "system"
OPERATOR = "operator"
CONTROLLER = "controller"


def citizen(pseudonym: str) -> str:
    return f"citizen:{pseudonym}"


def service(service_id: str) -> str:
    return f"service:{service_id}"


def staff(account_id: str) -> str:
    return f"staff:{account_id}"


def account_actor(session: Session, account: Account) -> str:
    """A portal account as an actor: a citizen by their pseudonym, staff by their account id."""
    if account.citizen_id is not None:
        pseudonym = session.exec(select(Citizen.pseudonym).where(Citizen.id == account.citizen_id)).first()
        if pseudonym is not None:
            return citizen(pseudonym)
    return staff(account.id)


def policy_loaded(policy: Policy, event: str) -> AuditEvent:
    """The policy in force, by digest: at each start of a worker and each ``db upgrade``."""
    return AuditEvent(actor=SYSTEM if event == "start" else OPERATOR, action=POLICY_LOADED,
                      details={"policy_digest": policy_digest(policy), "event": event,
                               "purposes": {p.id: p.version for p in policy.purposes}})

"""Property: the SQL cohort of valid consents equals a plain Python model of "newest record per pair".

Random sequences of citizen choices, controller revocations, restrictions, version bumps, sweeps and the
passing of time run against the ledger and against a model written independently of it; after every step the
SQL statement of ``valid_consent_pseudonyms``, the ledger's ``current`` and the model must agree, and the
ledger must accept exactly the changes the model allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from broker.consent.ledger import ConsentLedger, add_months
from broker.db import session_scope
from broker.errors import ConsentRuleViolation
from broker.identity.citizens import CitizenService
from broker.keys import Secrets
from broker.policy import Policy
from broker.timeutil import FixedClock
from tests.consent.conftest import bumped, make_citizen, plain_purpose
from tests.consent.test_states import ALLOWED, IDEMPOTENT

CITIZENS = 3
who = st.integers(0, CITIZENS - 1)
# Giving is listed twice so that enough consents exist for the other actions to act on.
ACTION = st.one_of(
    st.tuples(st.just("set"), who, st.sampled_from(["given", "given", "refused", "paused", "withdrawn"])),
    st.tuples(st.just("set"), who, st.just("given")),
    st.tuples(st.just("revoke"), who),
    st.tuples(st.just("restrict"), who),
    st.tuples(st.just("lift"), who),
    st.tuples(st.just("advance"), st.sampled_from([1, 31, 200, 400])),
    st.tuples(st.just("to-end-of"), who, st.booleans()),  # right up to, or exactly at, a validity's end
    st.tuples(st.just("bump")),
    st.tuples(st.just("sweep")),
)


@dataclass
class Newest:
    state: str
    version: int
    valid_until: datetime | None


@dataclass
class Model:
    version: int
    now: datetime
    months: int
    newest: dict[int, Newest]
    restricted: set[int]

    def effective(self, i: int) -> str:
        n = self.newest.get(i)
        if n is None or n.version != self.version:
            return "requested"
        if n.state == "given" and n.valid_until is not None and n.valid_until <= self.now:
            return "expired"
        return n.state

    def counts(self, i: int) -> bool:
        return self.effective(i) == "given" and i not in self.restricted

    def outcome(self, i: int, target: str) -> str:
        """'append', 'same' or 'refused', for a citizen's change."""
        start, n = self.effective(i), self.newest.get(i)
        if target == "given" and i in self.restricted:
            return "refused"
        if (start, target) in IDEMPOTENT:
            return "same"
        if target == "withdrawn" and n is not None and n.state in ("given", "paused"):
            return "append"
        return "append" if (start, target) in ALLOWED else "refused"

    def apply(self, i: int, target: str) -> None:
        n = self.newest.get(i)
        keeps_version = target in ("withdrawn", "paused", "revoked") and n is not None and n.state in (
            "given", "paused")
        version = n.version if keeps_version and n is not None else self.version
        until = add_months(self.now, self.months) if target == "given" else None
        self.newest[i] = Newest(target, version, until)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=st.lists(ACTION, min_size=4, max_size=30))
def test_valid_consent_pseudonyms_matches_the_model(engine: Engine, policy: Policy, secrets: Secrets,
                                                    clock: FixedClock, actions: list[tuple]) -> None:
    purpose = plain_purpose(policy)
    own_clock = FixedClock(clock.now())
    model = Model(version=purpose.version, now=own_clock.now(), months=purpose.consent_validity_months,
                  newest={}, restricted=set())
    current_policy = policy
    with session_scope(engine) as session:
        citizens = [make_citizen(session, secrets, own_clock) for _ in range(CITIZENS)]
        pseudonyms = {c.pseudonym: i for i, c in enumerate(citizens)}
        people = CitizenService(session, secrets)
        for action in actions:
            ledger = ConsentLedger(session, current_policy, secrets, own_clock)
            kind = action[0]
            if kind == "set":
                i, target = action[1], action[2]
                expected = model.outcome(i, target)
                before = ledger.current(citizens[i], purpose.id).record
                try:
                    record = ledger.set_state(citizens[i], purpose.id, target)
                except ConsentRuleViolation:
                    assert expected == "refused", (action, model.effective(i))
                else:
                    appended = before is None or record.id != before.id
                    assert expected == ("append" if appended else "same"), (action, model.effective(i))
                    if appended:
                        model.apply(i, target)
            elif kind == "revoke":
                i = action[1]
                allowed = model.effective(i) in ("given", "paused")
                try:
                    ledger.revoke(citizens[i], purpose.id)
                except ConsentRuleViolation:
                    assert not allowed
                else:
                    assert allowed
                    model.apply(i, "revoked")
            elif kind == "restrict":
                people.restrict(citizens[action[1]], own_clock.now())
                model.restricted.add(action[1])
            elif kind == "lift":
                people.lift_restriction(citizens[action[1]])
                model.restricted.discard(action[1])
            elif kind == "advance":
                own_clock.advance(days=action[1])
                model.now = own_clock.now()
            elif kind == "to-end-of":
                n = model.newest.get(action[1])
                end = n.valid_until if n is not None else None
                if end is not None and end - timedelta(microseconds=1) > model.now:
                    own_clock.at = end if action[2] else end - timedelta(microseconds=1)
                    model.now = own_clock.now()
            elif kind == "bump":
                current_policy = bumped(current_policy, current_policy.purpose(purpose.id))
                model.version += 1
            elif kind == "sweep":
                due = [i for i, n in model.newest.items()
                       if n.state == "given" and n.valid_until is not None and n.valid_until <= model.now]
                # the sweep covers every citizen in the database; ours must account for exactly `due`
                ledger.expire_due()
                for i in due:
                    model.newest[i] = Newest("expired", model.newest[i].version, None)
                    assert ledger.history(citizens[i], purpose.id)[-1].state == "expired"

            ledger = ConsentLedger(session, current_policy, secrets, own_clock)
            in_sql = {p for p in session.exec(ledger.valid_consent_pseudonyms(purpose.id)).all() if p in pseudonyms}
            expected_set = {c.pseudonym for i, c in enumerate(citizens) if model.counts(i)}
            assert in_sql == expected_set, action
            assert {c.pseudonym for c in citizens if ledger.current(c, purpose.id).counts} == expected_set
            for i, c in enumerate(citizens):
                assert ledger.current(c, purpose.id).state == model.effective(i), (action, i)

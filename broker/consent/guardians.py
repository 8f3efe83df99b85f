"""Art 8 GDPR: who speaks for a citizen under a purpose's minimum age.

Under the purpose's minimum age (France's digital age of consent, 15, unless the purpose asks more) consent
is given by a holder of parental responsibility. The broker records that guardian's pseudonym on the record;
the guardian must be a registered citizen known to be an adult, and the city must have linked them to this
minor (:mod:`broker.identity.guardianship`): being an adult is not parental responsibility, and without the
link any adult could consent for any child. An unknown birth date passes for purposes that ask no more than
the digital age of consent, since opening a portal account already requires it, and is refused for purposes
that ask more (e.g. 18 for health research); no guardian can stand in there either, since the city links a
guardian only to a citizen known to be a minor. Refusing, pausing and withdrawing never wait for a guardian.
"""

from __future__ import annotations

from datetime import date

from broker.consent.states import ConsentState
from broker.errors import ConsentRuleViolation
from broker.identity.citizens import age_on
from broker.identity.guardianship import ADULT_AGE
from broker.identity.models import Citizen
from broker.policy.schema import Policy, Purpose


def speaker_for(policy: Policy, purpose: Purpose, subject: Citizen, target: ConsentState, today: date, *,
                named: Citizen | None, stored: Citizen | None, linked: bool) -> Citizen | None:
    """The guardian who speaks for ``subject`` on this change, or None when the citizen speaks alone.

    ``named`` is the guardian the caller named (or None); ``stored`` is that guardian's row as the database
    holds it, None when it holds none: only the stored row is trusted for the guardian's age. ``linked`` says
    whether a guardianship link between the stored guardian and ``subject`` is in force.
    """
    minimum = policy.minimum_age(purpose)
    age = age_on(subject.birth_date, today) if subject.birth_date is not None else None
    if age is not None and age >= minimum:
        if named is not None:
            raise ConsentRuleViolation("this citizen is old enough to decide alone", rule="guardian-not-applicable")
        return None
    if named is None:
        if target is not ConsentState.given:
            return None
        if age is None:
            if minimum <= policy.broker.default_minimum_age:
                return None
            raise ConsentRuleViolation(f"this purpose is open from age {minimum}; the citizen's age is unknown",
                                       rule="age-unknown")
        raise ConsentRuleViolation(f"under {minimum}, consent is given by a guardian (Art 8)",
                                   rule="guardian-required")
    if stored is None or stored.erased_at is not None:
        raise ConsentRuleViolation("the guardian must be a registered citizen", rule="guardian-not-registered")
    guardian_age = age_on(stored.birth_date, today) if stored.birth_date is not None else None
    if stored.id == subject.id or guardian_age is None or guardian_age < ADULT_AGE:
        raise ConsentRuleViolation(f"a guardian must be known to be at least {ADULT_AGE}", rule="guardian-not-adult")
    if not linked:
        raise ConsentRuleViolation("this adult holds no parental responsibility for this citizen that the city "
                                   "has recorded", rule="guardian-not-linked")
    return stored

"""The demo city's population: who lives where, how old they are, which language they read.

Everything is drawn from a seeded numpy generator, a chunk of citizens at a time, so the same seed always
gives the same people (ids included). Only what must be random for security is not seeded: each citizen's
data key and the AES-GCM nonces, so ciphertexts differ between runs while their plaintexts do not.

Shapes are plausible for Lyon rather than exact: arrondissement populations, a young adult-heavy age
pyramid (a student city) with some 13 to 17-year-olds, mostly French-speaking.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from broker.demo.timestamps import US_PER_DAY, ages_on
from broker.keys import Secrets

# Residents per arrondissement (thousands, rounded); a district id missing here gets the median weight.
LYON_DISTRICT_POPULATION = {
    "lyon-1": 30, "lyon-2": 31, "lyon-3": 104, "lyon-4": 36, "lyon-5": 49,
    "lyon-6": 52, "lyon-7": 85, "lyon-8": 87, "lyon-9": 52,
}
# (first age, last age, share of residents aged 13+, in %).
AGE_BANDS = [
    (13, 17, 5.5), (18, 24, 15.0), (25, 29, 11.0), (30, 39, 16.0), (40, 49, 13.0),
    (50, 59, 12.0), (60, 69, 11.0), (70, 79, 9.5), (80, 94, 7.0),
]
ENGLISH_SHARE = 0.1
# Some citizens lower their yearly privacy cap (ε) below the policy default in the portal.
LOWERED_CAPS = ((0.04, 5.0), (0.02, 2.0))
REGISTERED_DAYS_AGO = (30, 420)
ADULT_AGE = 18

FIRST_NAMES = [
    "Camille", "Léa", "Manon", "Chloé", "Emma", "Inès", "Jade", "Louise", "Sarah", "Julie", "Anaïs", "Clara",
    "Nathalie", "Isabelle", "Sylvie", "Martine", "Françoise", "Amina", "Yasmine", "Lina", "Hugo", "Lucas",
    "Thomas", "Nicolas", "Julien", "Maxime", "Antoine", "Alexandre", "Mathis", "Nathan", "Théo", "Louis",
    "Pierre", "Philippe", "Michel", "Jean", "Patrick", "Karim", "Mehdi", "Youssef", "Bastien", "Romain",
]
LAST_NAMES = [
    "Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois", "Moreau", "Laurent",
    "Simon", "Michel", "Lefebvre", "Leroy", "Roux", "David", "Bertrand", "Morel", "Fournier", "Girard",
    "Bonnet", "Dupont", "Lambert", "Fontaine", "Rousseau", "Vincent", "Muller", "Faure", "Mercier", "Blanc",
    "Guerin", "Boyer", "Garnier", "Chevalier", "Perrin", "Benali", "Nguyen", "Haddad", "Da Silva", "Rey",
]

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@dataclass
class CitizenBatch:
    """One chunk of synthetic citizens as parallel arrays (index ``i`` is one citizen)."""

    ordinal: np.ndarray        # 1-based number in the whole population, for citizen-<n>@ addresses
    ids: list[str]             # UUID v4 strings from the seeded generator
    birth: np.ndarray          # datetime64[D]
    age: np.ndarray            # completed years today
    district: np.ndarray       # index into the district domain
    locale: np.ndarray         # object array of "fr" / "en"
    first_name: np.ndarray     # index into FIRST_NAMES
    last_name: np.ndarray      # index into LAST_NAMES
    registered_us: np.ndarray  # int64 µs since the epoch
    privacy_cap: list[float | None]
    engagement: np.ndarray     # latent willingness to take part, ~N(0, 1); correlates consents and data
    pseudonyms: np.ndarray | None = None  # object array, filled once the pepper has been applied

    def __len__(self) -> int:
        return len(self.ids)

    def name(self, i: int) -> str:
        return f"{FIRST_NAMES[self.first_name[i]]} {LAST_NAMES[self.last_name[i]]}"


def uuid4_strings(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` RFC 4122 version-4 UUIDs drawn from ``rng`` (what ``uuid.UUID(int=r, version=4)`` gives)."""
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    digits = np.empty((n, 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX[raw >> 4]
    digits[:, 1::2] = _HEX[raw & 0x0F]
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    for start, stop, at in ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24)):
        out[:, at:at + stop - start] = digits[:, start:stop]
    return list(map(bytes.decode, out.view("S36").ravel().tolist()))


def district_weights(districts: list[str]) -> np.ndarray:
    known = [LYON_DISTRICT_POPULATION[d] for d in districts if d in LYON_DISTRICT_POPULATION]
    fallback = float(np.median(known)) if known else 1.0
    weights = np.array([LYON_DISTRICT_POPULATION.get(d, fallback) for d in districts], dtype=float)
    return weights / weights.sum()


def _age_distribution() -> tuple[np.ndarray, np.ndarray]:
    ages, weights = [], []
    for first, last, share in AGE_BANDS:
        span = last - first + 1
        ages.extend(range(first, last + 1))
        weights.extend([share / span] * span)
    probabilities = np.array(weights) / sum(weights)
    return np.array(ages), probabilities


def generate_citizens(rng: np.random.Generator, *, first_ordinal: int, n: int, today: date,
                      districts: list[str]) -> CitizenBatch:
    """``n`` citizens numbered from ``first_ordinal``; the same ``rng`` state always gives the same batch."""
    ids = uuid4_strings(rng, n)
    ages, probabilities = _age_distribution()
    age = rng.choice(ages, size=n, p=probabilities)
    # Born on a day such that the completed age today is exactly ``age``.
    today64 = np.datetime64(today, "D")
    years_back = (today.year - age).astype(np.int64)
    month_day = today64 - today64.astype("datetime64[Y]").astype("datetime64[D]")
    last_birthday = (years_back - 1970).astype("datetime64[Y]").astype("datetime64[D]") + month_day
    birth = last_birthday - rng.integers(0, 365, size=n).astype("timedelta64[D]")
    age_now = ages_on(birth, today)
    district = rng.choice(len(districts), size=n, p=district_weights(districts)) if districts else np.zeros(n, int)
    locale = np.where(rng.random(n) < ENGLISH_SHARE, "en", "fr").astype(object)
    first_name = rng.integers(0, len(FIRST_NAMES), size=n)
    last_name = rng.integers(0, len(LAST_NAMES), size=n)
    today_us = np.int64((today64 - np.datetime64(0, "D")).astype(np.int64)) * US_PER_DAY
    low, high = REGISTERED_DAYS_AGO
    registered = today_us - rng.integers(low * US_PER_DAY, high * US_PER_DAY, size=n) // 1_000_000 * 1_000_000
    draw = rng.random(n)
    caps: list[float | None] = [None] * n
    threshold = 0.0
    for share, cap in LOWERED_CAPS:
        for i in np.flatnonzero((draw >= threshold) & (draw < threshold + share)).tolist():
            caps[i] = cap
        threshold += share
    engagement = rng.standard_normal(n)
    return CitizenBatch(
        ordinal=np.arange(first_ordinal, first_ordinal + n), ids=ids, birth=birth, age=age_now, district=district,
        locale=locale, first_name=first_name, last_name=last_name, registered_us=registered, privacy_cap=caps,
        engagement=engagement,
    )


def pick_guardians(rng: np.random.Generator, batch: CitizenBatch) -> np.ndarray:
    """For each minor, the index of an adult of the same batch (same district when there is one); -1 else.

    Guardians are 30 to 65, so they were adults at every consent the last year could hold.
    """
    guardian = np.full(len(batch), -1, dtype=np.int64)
    minors = np.flatnonzero(batch.age < ADULT_AGE)
    if minors.size == 0:
        return guardian
    parents = (batch.age >= 30) & (batch.age <= 65)
    everyone = np.flatnonzero(parents)
    if everyone.size == 0:
        everyone = np.flatnonzero(batch.age >= 30)
    if everyone.size == 0:
        return guardian
    for district in np.unique(batch.district[minors]).tolist():
        here = minors[batch.district[minors] == district]
        pool = np.flatnonzero(parents & (batch.district == district))
        pool = pool if pool.size else everyone
        guardian[here] = pool[rng.integers(0, pool.size, size=here.size)]
    return guardian


def citizen_rows(batch: CitizenBatch, secrets: Secrets, domain: str, *, birth_text: list[str],
                 registered_text: list[str], districts: list[str]) -> list[tuple]:
    """The ``citizen`` table rows, sealing identifiers exactly as ``CitizenService.register`` does.

    Per citizen: a fresh data key wrapped by the master key (RFC 3394), email and name sealed with AES-GCM
    under that key with the associated data ``<id>:email`` / ``<id>:name``, so ``identifiers()`` opens them
    and erasure (destroying the wrapped key) works on seeded citizens like on registered ones. This loop is
    the seeder's main Python cost (~12 µs a citizen); everything around it is vectorised.
    """
    new_key = secrets.new_wrapped_data_key
    seal = secrets.seal
    pseudonym = secrets.pseudonym
    email_index = secrets.email_index
    rows = []
    pseudonyms = []
    ordinals = batch.ordinal.tolist()
    first, last = batch.first_name.tolist(), batch.last_name.tolist()
    district_names = [districts[d] for d in batch.district.tolist()] if districts else [None] * len(batch)
    locales = batch.locale.tolist()
    for i, cid in enumerate(batch.ids):
        email = f"citizen-{ordinals[i]}@{domain}"
        name = f"{FIRST_NAMES[first[i]]} {LAST_NAMES[last[i]]}"
        key, wrapped = new_key()
        alias = pseudonym(cid)
        pseudonyms.append(alias)
        rows.append((
            cid, alias, email_index(email),
            seal(email.encode(), aad=f"{cid}:email".encode(), key=key),
            seal(name.encode(), aad=f"{cid}:name".encode(), key=key),
            wrapped, birth_text[i], district_names[i], locales[i], batch.privacy_cap[i],
            registered_text[i], None, None,
        ))
    batch.pseudonyms = np.array(pseudonyms, dtype=object)
    return rows


CITIZEN_COLUMNS = ("id", "pseudonym", "email_index", "email_ct", "name_ct", "wrapped_key", "birth_date",
                   "district", "locale", "privacy_cap", "created_at", "restricted_at", "erased_at")

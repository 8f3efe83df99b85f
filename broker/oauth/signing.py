"""The broker's signing keys as the OAuth server uses them: read from the database, kept for a moment.

Reading the key ring costs a query, an AES-GCM unwrap and a PEM import; doing that for every token issued or
checked would cost more than the signature itself. So the ring is kept for :data:`TTL` seconds. The price is
bounded and small: after ``consent-broker keys rotate`` a worker signs with the previous key (still valid,
still published) for at most TTL seconds more, and a retired key keeps verifying for at most TTL seconds
(retirement only happens once nothing it signed is still valid). A token signed by a key this worker has not
seen yet (another worker rotated first) triggers an immediate re-read; such re-reads happen at most once per
:data:`MIN_REFRESH` seconds, so that made-up ``kid`` values cannot turn into a query each.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from joserfc.errors import InvalidKeyIdError
from joserfc.jwk import Key, KeySet

from broker.keys import KeyRing

TTL = 2.0
MIN_REFRESH = 1.0


class SigningKeys:
    def __init__(self, load: Callable[[], KeyRing], *, ttl: float = TTL) -> None:
        self._load = load
        self._ttl = ttl
        self._lock = threading.Lock()
        self._state: tuple[KeyRing, KeySet] | None = None
        self._loaded_at = 0.0
        self._last_miss = float("-inf")

    def _refresh(self) -> tuple[KeyRing, KeySet]:
        ring = self._load()
        self._state, self._loaded_at = (ring, KeySet([ring.signer])), time.monotonic()
        return self._state

    def _current(self) -> tuple[KeyRing, KeySet]:
        state = self._state
        if state is not None and time.monotonic() - self._loaded_at < self._ttl:
            return state
        with self._lock:
            if self._state is not None and time.monotonic() - self._loaded_at < self._ttl:
                return self._state
            return self._refresh()

    def ring(self) -> KeyRing:
        return self._current()[0]

    def signing_keyset(self) -> KeySet:
        """The current private key in a set of one, so that joserfc writes its ``kid`` into the header."""
        return self._current()[1]

    def verification_key(self, kid: str | None) -> Key:
        """The public key for ``kid`` among the keys in force; raises InvalidKeyIdError if there is none."""
        if not kid:
            raise InvalidKeyIdError("the token names no key")
        try:
            return self.ring().public_keys.get_by_kid(kid)
        except (InvalidKeyIdError, ValueError):
            with self._lock:
                if time.monotonic() - self._last_miss < MIN_REFRESH:
                    raise
                self._last_miss = time.monotonic()
                ring, _ = self._refresh()
            return ring.public_keys.get_by_kid(kid)

    def invalidate(self) -> None:
        """Forget the cached ring (tests, and a process that just rotated the keys itself)."""
        with self._lock:
            self._state, self._loaded_at = None, 0.0

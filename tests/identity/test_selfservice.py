"""The citizen's self-service: age bands that decide who consents alone."""

from __future__ import annotations

from datetime import date

import pytest

from broker.identity.selfservice import age_band


@pytest.mark.parametrize(("born", "band"), [
    (None, "unknown"),
    (date(2011, 3, 3), "under-15"),
    (date(2011, 3, 2), "15-17"),
    (date(2008, 3, 3), "15-17"),
    (date(2008, 3, 2), "18-or-over"),
])
def test_age_bands(born: date | None, band: str) -> None:
    assert age_band(born, date(2026, 3, 2)) == band

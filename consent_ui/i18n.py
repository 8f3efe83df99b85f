"""Languages of the portal: gettext catalogues (Babel) for the templates, policy fields for policy texts.

The language is the one the person chose with the switch (a ``lang`` cookie), else their account's locale,
else the browser's ``Accept-Language``, else French (the city's language).
"""

from __future__ import annotations

import functools
from pathlib import Path

from babel.support import NullTranslations, Translations
from starlette.requests import Request

from broker.api.login import LANGUAGES, choose_language

LANG_COOKIE = "lang"
LOCALES = Path(__file__).parent / "locales"


@functools.cache
def translations(lang: str) -> NullTranslations:
    # English is the source language of the templates: its catalogue may stay empty.
    return Translations.load(str(LOCALES), [lang], domain="messages")


def choose(request: Request, account_locale: str | None = None) -> str:
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen is not None and chosen in LANGUAGES:
        return chosen
    if account_locale:
        primary = account_locale.split("-")[0].split("_")[0].lower()
        if primary in LANGUAGES:
            return primary
    return choose_language(request, None)  # Accept-Language, as the login form reads it; French by default

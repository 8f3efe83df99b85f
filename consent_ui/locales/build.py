"""Rebuild the catalogues after a template changes: extract ``messages.pot``, merge it into each language's
``messages.po`` (the French texts live there, edited like any translation), and compile the ``.mo`` files,
which are committed so that an install needs no build step.

    .venv/bin/python -m consent_ui.locales.build

Exits 1 while a French message is untranslated. English is the templates' own language: its catalogue
stays empty and falls back to the message ids.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

HERE = Path(__file__).parent
PACKAGE = HERE.parent
LANGUAGES = ("fr", "en")


def _read(path: Path, lang: str | None = None) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=lang)


def main() -> int:
    pot = HERE / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", str(PACKAGE / "babel.cfg"),
                    "-o", str(pot), "--no-location", "--omit-header", "-k", "_", str(PACKAGE)],
                   check=True, capture_output=True, cwd=PACKAGE.parent)
    template = _read(pot)
    untranslated = []
    for lang in LANGUAGES:
        po = HERE / lang / "LC_MESSAGES" / "messages.po"
        catalog = _read(po, lang) if po.exists() else Catalog(locale=lang)
        catalog.update(template, no_fuzzy_matching=True)
        if lang != "en":
            untranslated += [f"{lang}: {m.id!r}" for m in catalog if m.id and not m.string]
        po.parent.mkdir(parents=True, exist_ok=True)
        with po.open("wb") as handle:
            write_po(handle, catalog, no_location=True, ignore_obsolete=True)
        with po.with_suffix(".mo").open("wb") as handle:
            write_mo(handle, catalog)
    for line in untranslated:
        print(f"untranslated {line}", file=sys.stderr)
    print(f"{len(template)} messages; {len(untranslated)} untranslated")
    return 1 if untranslated else 0


if __name__ == "__main__":
    raise SystemExit(main())

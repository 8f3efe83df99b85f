"""Secrets, pseudonyms, data keys and signatures (pure: no database)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import given
from hypothesis import strategies as st

from broker.keys import Secrets, b64u, unb64u
from broker.settings import Settings


def test_secret_files_are_created_once_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = Secrets.from_settings(settings)
    for name in ("master.key", "pepper.key"):
        mode = stat.S_IMODE((tmp_path / "keys" / name).stat().st_mode)
        assert mode == 0o600, name
    again = Secrets.from_settings(settings)
    assert again.master_key == first.master_key and again.pepper == first.pepper
    assert first.master_key != first.pepper


def test_master_key_from_environment_wins_over_file(tmp_path: Path) -> None:
    key = b64u(bytes(range(32)))
    secrets = Secrets.from_settings(Settings(data_dir=tmp_path, master_key=key))
    assert secrets.master_key == bytes(range(32))
    assert not (tmp_path / "keys" / "master.key").exists()


def test_a_short_master_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Secrets.from_settings(Settings(data_dir=tmp_path, master_key=b64u(b"short")))


def test_secrets_never_show_in_repr(tmp_path: Path) -> None:
    secrets = Secrets.from_settings(Settings(data_dir=tmp_path))
    assert secrets.master_key.hex() not in repr(secrets)
    assert b64u(secrets.pepper) not in repr(secrets)


@given(st.binary(min_size=0, max_size=64))
def test_base64url_round_trips(data: bytes) -> None:
    assert unb64u(b64u(data)) == data


def test_pseudonyms_depend_on_the_pepper(tmp_path: Path) -> None:
    a = Secrets.from_settings(Settings(data_dir=tmp_path / "a"))
    b = Secrets.from_settings(Settings(data_dir=tmp_path / "b"))
    assert a.pseudonym("c-1") == a.pseudonym("c-1")
    assert a.pseudonym("c-1") != a.pseudonym("c-2")
    assert a.pseudonym("c-1") != b.pseudonym("c-1")
    assert len(a.pseudonym("c-1")) == 64


def test_email_index_ignores_case_and_spaces(tmp_path: Path) -> None:
    secrets = Secrets.from_settings(Settings(data_dir=tmp_path))
    assert secrets.email_index(" Camille@Lyon.example ") == secrets.email_index("camille@lyon.example")


def test_sealed_data_opens_only_with_its_key_and_binding(tmp_path: Path) -> None:
    secrets = Secrets.from_settings(Settings(data_dir=tmp_path))
    key, wrapped = secrets.new_wrapped_data_key()
    assert secrets.unwrap(wrapped) == key
    sealed = secrets.seal(b"camille@lyon.example", aad=b"c-1:email", key=key)
    assert b"camille" not in sealed
    assert secrets.open(sealed, aad=b"c-1:email", key=key) == b"camille@lyon.example"
    with pytest.raises(InvalidTag):
        secrets.open(sealed, aad=b"c-2:email", key=key)  # copied onto another citizen: refused
    other, _ = secrets.new_wrapped_data_key()
    with pytest.raises(InvalidTag):
        secrets.open(sealed, aad=b"c-1:email", key=other)

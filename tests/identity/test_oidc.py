"""OIDC login helpers that need no provider: configuration and the claims a citizen is created from."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pydantic import SecretStr

from broker.identity.oidc import OidcConfig, _birth_date, _name
from broker.settings import Settings


def test_no_issuer_means_no_oidc(tmp_path: Path) -> None:
    assert OidcConfig.from_settings(Settings(data_dir=tmp_path)) is None


def test_an_issuer_needs_client_credentials(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="CLIENT_ID"):
        Settings(data_dir=tmp_path, oidc_issuer="https://idp.lyon.example/realms/city")


def test_the_callback_is_on_the_brokers_public_url(tmp_path: Path) -> None:
    config = OidcConfig.from_settings(Settings(
        data_dir=tmp_path, issuer="https://consent.lyon.example/", oidc_issuer="https://idp.lyon.example/realms/c/",
        oidc_client_id="broker", oidc_client_secret=SecretStr("s")))
    assert config is not None
    assert config.redirect_uri == "https://consent.lyon.example/login/oidc/callback"
    assert config.issuer == "https://idp.lyon.example/realms/c"


def test_the_client_secret_never_prints(tmp_path: Path) -> None:
    assert "hunter2" not in repr(Settings(data_dir=tmp_path, oidc_client_secret=SecretStr("hunter2")))


@pytest.mark.parametrize(("claims", "name"), [
    ({"name": "Camille Martin", "given_name": "X"}, "Camille Martin"),
    ({"given_name": "Camille", "family_name": "Martin"}, "Camille Martin"),
    ({"family_name": "Martin"}, "Martin"),
    ({}, ""),
])
def test_the_name_comes_from_standard_claims(claims: dict, name: str) -> None:
    assert _name(claims) == name


@pytest.mark.parametrize(("value", "born"), [
    ("1988-04-12", date(1988, 4, 12)), ("1988-00-00", None), (None, None), (19880412, None),
])
def test_birthdates_the_provider_does_not_know_are_dropped(value: object, born: date | None) -> None:
    assert _birth_date(value) == born

"""RFC 8414 metadata, held to authlib's own validator, and consistent with what the server does."""

from __future__ import annotations

from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from fastapi.testclient import TestClient

from broker.policy import Policy
from broker.scopes import supported_scopes
from broker.timeutil import FixedClock
from tests.oauth.conftest import Credentials
from tests.oauth.support import ISSUER, access_token, claims_of


def test_metadata_validates_with_authlib_and_matches_the_server(api: TestClient, oauth_policy: Policy) -> None:
    response = api.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    document = response.json()
    AuthorizationServerMetadata(document).validate()
    assert document["issuer"] == ISSUER
    assert document["token_endpoint"] == ISSUER + "/oauth/token"
    assert document["introspection_endpoint"] == ISSUER + "/oauth/introspect"
    assert document["revocation_endpoint"] == ISSUER + "/oauth/revoke"
    assert document["jwks_uri"] == ISSUER + "/.well-known/jwks.json"
    assert document["grant_types_supported"] == ["client_credentials"]
    assert set(document["token_endpoint_auth_methods_supported"]) == {"private_key_jwt", "client_secret_basic"}
    assert "HS256" not in document["token_endpoint_auth_signing_alg_values_supported"]
    assert document["scopes_supported"] == supported_scopes(oauth_policy)
    assert document["authorization_details_types_supported"] == ["data-request"]
    assert api.get("/.well-known/jwks.json").status_code == 200


def test_issued_tokens_name_the_metadata_issuer(api: TestClient, registered: dict[str, Credentials],
                                                service_id: str, clock: FixedClock) -> None:
    token = access_token(api, registered[service_id].key, service_id, clock)
    assert claims_of(token)[1]["iss"] == api.get("/.well-known/oauth-authorization-server").json()["issuer"]

"""The authorization server: thin FastAPI glue around authlib's framework-neutral ``AuthorizationServer``.

authlib ships server integrations for Flask and Django only, and it is synchronous. So, per request:

1. the body is read on the event loop and adapted to an ``OAuth2Request`` (broker.oauth.requests);
2. authlib runs in the thread pool; its callbacks (``query_client``, ``save_token``, the assertion ``jti``
   check...) read through the request's scope and queue their writes (broker.oauth.store);
3. the queued writes are committed together, once authlib has answered; should the assertion turn out to
   be a replay at that point (another worker recorded it first), the answer becomes ``invalid_client``;
4. authlib's ``(status, body, headers)`` becomes a Starlette response in RFC 6749 §5.1/§5.2 JSON, the wire
   format OAuth client libraries parse (not problem+json).

What the broker registers with authlib:

* grant ``client_credentials`` (RFC 6749 §4.4), with scopes checked strictly (:class:`ClientCredentialsGrant`)
  and RFC 9396 ``authorization_details``;
* client authentication ``private_key_jwt`` (broker.oauth.rfc7523) and ``client_secret_basic`` (authlib's,
  argon2 hashes through :meth:`BrokerClient.check_client_secret`);
* RFC 9068 JWT access tokens (broker.oauth.rfc9068), RFC 7662 introspection, RFC 7009 revocation.

authlib checks that the request URL is https or loopback (``InsecureTransportError``). The broker decides
transport itself, before authlib runs (broker.oauth.transport), so authlib is shown the issuer's URL for the
endpoint: the configured public identity of the broker rather than whatever ``Host`` the client sent.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    JsonRequest,
    MissingAuthorizationError,
    OAuth2Error,
    OAuth2Request,
    ResourceProtector,
    UnsupportedTokenTypeError,
    grants,
)
from authlib.oauth2.rfc6749.util import extract_basic_authorization, scope_to_list
from authlib.oauth2.rfc6750 import InsufficientScopeError, InvalidTokenError
from fastapi import Request
from joserfc import jws
from joserfc.errors import JoseError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from broker import logs
from broker.audit import AuditEvent, actions
from broker.keys import KeyRing
from broker.oauth import rfc9396, store, transport
from broker.oauth.clients import CLIENT_SECRET_BASIC, PRIVATE_KEY_JWT, BrokerClient, Grant, load_client
from broker.oauth.errors import HttpsRequired, InsufficientScope, InvalidToken, Unauthenticated, safe_description
from broker.oauth.principal import ClientPrincipal
from broker.oauth.requests import read_form_request
from broker.oauth.rfc7009 import RevocationEndpoint
from broker.oauth.rfc7523 import PrivateKeyJWT
from broker.oauth.rfc7662 import IntrospectionEndpoint
from broker.oauth.rfc9068 import (
    AccessTokenGenerator,
    AccessTokenValidator,
    IssuedAccessToken,
    read_issued_token,
    resource_identifier,
)
from broker.oauth.signing import SigningKeys
from broker.oauth.store import OAuthStore
from broker.runtime import Runtime
from broker.scopes import purpose_scope, supported_scopes

log = logging.getLogger("broker.oauth")

TOKEN_PATH = "/oauth/token"
INTROSPECTION_PATH = "/oauth/introspect"
REVOCATION_PATH = "/oauth/revoke"
#: Expired token and assertion rows are purged at most this often per worker, by the token endpoint.
PURGE_INTERVAL = 60.0


class InvalidTargetError(OAuth2Error):
    """RFC 8707 §2: a ``resource`` the broker does not serve."""

    error = "invalid_target"


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    """RFC 6749 §4.4, with scope and authorization details checked against the client's policy."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [CLIENT_SECRET_BASIC, PRIVATE_KEY_JWT]
    server: BrokerAuthorizationServer

    def validate_token_request(self) -> None:
        # RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in each request."
        if self.request.headers.get("Authorization") and self.request.form.get("client_assertion"):
            raise InvalidRequestError("Use one client authentication method per request.")
        super().validate_token_request()

    def validate_requested_scope(self) -> None:
        client: BrokerClient = self.request.client
        requested = list(dict.fromkeys(scope_to_list(self.request.payload.scope) or []))
        self.server.validate_requested_scope(" ".join(requested))
        for scope in requested:
            if scope not in client.allowed_scopes:
                raise InvalidScopeError(safe_description(f"Scope {scope} is not granted to client {client.client_id}."))
        resource = self.request.form.get("resource")
        if resource is not None and resource != self.server.resource:
            raise InvalidTargetError(safe_description(f"Tokens are issued for {self.server.resource} only."))
        details = rfc9396.parse(self.request.form.get("authorization_details"))
        rfc9396.check(details, client.service, client.allowed_scopes, client.policy)
        granted = dict.fromkeys(requested)
        granted.update(dict.fromkeys(purpose_scope(d.purpose) for d in details))
        if not granted:
            # RFC 6749 §3.3: no scope asked for, so the pre-defined default: everything the policy grants.
            granted = dict.fromkeys(sorted(client.allowed_scopes))
        if not granted:
            raise InvalidScopeError(safe_description(f"The policy grants client {client.client_id} no scope."))
        client.grant = Grant(scopes=tuple(granted), authorization_details=tuple(d.claim() for d in details))


def claimed_client_id(request: OAuth2Request) -> str | None:
    """The client a token-endpoint request says it is, before any check: HTTP Basic's user, the
    ``client_id`` field, or the ``iss`` of a client assertion (read, not verified). Only for the log."""
    basic_id, _ = extract_basic_authorization(request.headers)
    if basic_id:
        return str(basic_id)[:128]
    form = request.payload.data if request.payload is not None else {}
    if form.get("client_id"):
        return str(form["client_id"])[:128]
    assertion = form.get("client_assertion")
    if not assertion:
        return None
    try:
        issuer = json.loads(jws.extract_compact(str(assertion).encode()).payload).get("iss")
    except (JoseError, ValueError, AttributeError):
        return None
    return issuer[:128] if isinstance(issuer, str) else None


class BrokerAuthorizationServer(AuthorizationServer):
    def __init__(self, runtime: Runtime) -> None:
        super().__init__(scopes_supported=supported_scopes(runtime.policy))
        self.runtime = runtime
        self.settings = runtime.settings
        self.issuer = runtime.settings.issuer
        self.base_url = self.issuer.rstrip("/")
        self.resource = resource_identifier(self.issuer)
        self.store = OAuthStore(runtime.engine, runtime.reader)
        self.keys = SigningKeys(self._load_keyring)
        self._last_purge = 0.0

        self.register_grant(ClientCredentialsGrant)
        self.register_token_generator(
            "default", AccessTokenGenerator(issuer=self.issuer, resource=self.resource, keys=self.keys, now=self.now))
        audiences = [self.issuer, self.url(TOKEN_PATH), self.url(INTROSPECTION_PATH), self.url(REVOCATION_PATH)]
        self.register_client_auth_method(PRIVATE_KEY_JWT, PrivateKeyJWT(audiences, now=self.now))
        self.validator = AccessTokenValidator(issuer=self.issuer, resource=self.resource, keys=self.keys,
                                              now=self.now, state=self._token_state, policy=runtime.policy)
        self.register_endpoint(IntrospectionEndpoint(self, self._find_token))
        self.register_endpoint(RevocationEndpoint(self, self._find_token, self._revoke))
        self.protector = ResourceProtector()
        self.protector.register_token_validator(self.validator)

    def _load_keyring(self) -> KeyRing:
        with self.store.reading() as session:
            return KeyRing.load(session, self.runtime.secrets)

    def url(self, path: str) -> str:
        return self.base_url + path

    def now(self) -> int:
        return int(self.runtime.clock.now().timestamp())

    # -- authlib's AuthorizationServer ----------------------------------------------------------------------
    def query_client(self, client_id: str) -> BrokerClient | None:
        return load_client(store.client_row(store.current().connection, client_id), self.runtime.policy)

    def authenticate_client(self, request: OAuth2Request, methods: list[str], endpoint: str = "token") -> Any:
        """authlib's client authentication; a failure that names a registered client lands in the access log
        with the request's other writes (a name that is not a client of ours is refused unlogged, like a bearer
        string that is not one of our tokens: see broker.audit.refusals)."""
        try:
            return super().authenticate_client(request, methods, endpoint)
        except InvalidClientError:
            claimed = claimed_client_id(request)
            client = self.query_client(claimed) if claimed else None
            if client is not None:
                store.current().writes.audit.append(AuditEvent(
                    actor=actions.service(client.service.id), action=actions.LOGIN_FAILED,
                    details={"method": "client-authentication", "client_id": client.client_id,
                             "endpoint": endpoint, "reason": "invalid-client"}))
            raise

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        # The token is ours and a moment old: read its claims without verifying them again.
        claims = json.loads(jws.extract_compact(token["access_token"].encode()).payload)
        writes = store.current().writes
        expires_at = datetime.fromtimestamp(claims["exp"], UTC)
        writes.issued.append({"jti": claims["jti"], "client_id": claims["client_id"],
                              "issued_at": datetime.fromtimestamp(claims["iat"], UTC),
                              "expires_at": expires_at, "revoked_at": None})
        client: BrokerClient = request.client
        writes.audit.append(AuditEvent(
            actor=actions.service(client.service.id), action=actions.TOKEN_ISSUED,
            details={"client_id": claims["client_id"], "jti": claims["jti"], "scopes": claims.get("scope", ""),
                     "expires_at": expires_at.isoformat()}))
        if time.monotonic() - self._last_purge > PURGE_INTERVAL:
            self._last_purge = time.monotonic()
            writes.purge_before = self.runtime.clock.now()

    def validate_requested_scope(self, scope: str | None) -> None:
        # authlib's check, naming the unknown scope.
        for name in scope_to_list(scope) or []:
            if name not in (self.scopes_supported or ()):
                raise InvalidScopeError(safe_description(f"Unknown scope {name[:64]}."))

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if not isinstance(request, OAuth2Request):
            raise TypeError("read the request with broker.oauth.requests.read_form_request first")
        return request

    def create_json_request(self, request: Any) -> JsonRequest:
        if not isinstance(request, JsonRequest):
            raise TypeError("read the request with broker.oauth.requests.read_json_request first")
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        content = body if isinstance(body, str) else json.dumps(body)
        return Response(content, status_code=status, headers=dict(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        if name == "after_authenticate_client":
            client = kwargs.get("client")
            logs.event(log, "oauth_client_authenticated", client_id=getattr(client, "client_id", None))
        elif name == "after_revoke_token":
            logs.event(log, "oauth_token_revoked", client_id=getattr(kwargs.get("client"), "client_id", None))

    # -- the async edge ---------------------------------------------------------------------------------------
    async def respond(self, request: Request, endpoint: str) -> Response:
        """Answer ``/oauth/token`` (endpoint ``token``), ``/oauth/introspect`` or ``/oauth/revoke``."""
        refused = transport.refusal(request, self.settings)
        if refused:
            return self.handle_error_response(None, InvalidRequestError(refused))
        try:
            oauth_request = await read_form_request(request, self._authlib_uri(request.url.path))
        except OAuth2Error as error:
            return self.handle_error_response(None, error)
        return await run_in_threadpool(self.handle, endpoint, oauth_request)

    def handle(self, endpoint: str, oauth_request: OAuth2Request) -> Response:
        """authlib's answer to one request, then the request's writes, committed together."""
        with self.store.request() as scope:
            if endpoint == "token":
                response = self.create_token_response(oauth_request)
            else:
                response = self.create_endpoint_response(endpoint, oauth_request)
        if scope.writes and not self.store.commit(scope.writes, self.runtime.clock.now()):
            # Another worker recorded this assertion between our check and our commit: a replay after all.
            return self.handle_error_response(oauth_request, InvalidClientError(description="JWT ID is used before."))
        return response

    def _authlib_uri(self, path: str) -> str:
        uri = self.url(path)
        if self.settings.allow_insecure_http and uri.startswith("http://"):
            # The development setting already admitted plain http (broker.oauth.transport); authlib's own
            # check would refuse a non-loopback http URL regardless, so it is shown the https form.
            uri = "https://" + uri.removeprefix("http://")
        return uri

    # -- tokens -------------------------------------------------------------------------------------------
    def _token_state(self, jti: str) -> store.TokenState | None:
        return self.store.token_state(jti)

    def _find_token(self, token_string: str) -> IssuedAccessToken | None:
        return read_issued_token(self.validator, token_string,
                                 lambda jti: store.token_state(store.current().connection, jti), self.now())

    def _revoke(self, token: IssuedAccessToken) -> None:
        writes = store.current().writes
        writes.revoked.append(token.jti)
        service_id = token.state.service_id if token.state is not None else "unknown"
        writes.revocations[token.jti] = AuditEvent(
            actor=actions.service(service_id), action=actions.TOKEN_REVOKED,
            details={"client_id": token.claims.get("client_id"), "jti": token.jti})

    def authenticate_resource_request(self, request: Request, required: list[str]) -> ClientPrincipal:
        """The RFC 6750 bearer check of a protected endpoint, as a principal or a BrokerError with its
        ``WWW-Authenticate`` challenge (authlib's InsufficientScopeError carries none: RFC 6750 §3 wants one)."""
        refused = transport.refusal(request, self.settings)
        if refused:
            raise HttpsRequired(refused)
        try:
            claims = self.protector.validate_request(required, request)
        except (MissingAuthorizationError, UnsupportedTokenTypeError) as exc:
            raise Unauthenticated() from exc
        except InvalidTokenError as exc:
            raise InvalidToken(exc.description) from exc
        except InsufficientScopeError as exc:
            raise InsufficientScope(f"this endpoint needs the scope {' '.join(required)}", required=required) from exc
        state = claims.state
        service = self.runtime.policy.service(state.service_id) if state else None
        if state is None or service is None:
            raise InvalidToken("The token's client is not in the policy.")
        return ClientPrincipal(
            client_id=claims["client_id"],
            service=service,
            scopes=claims.effective_scopes,
            authorization_details=tuple(claims.get("authorization_details") or ()),
            token_id=claims["jti"],
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            policy=self.runtime.policy,
        )

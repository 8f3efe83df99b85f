"""Which requests may carry OAuth credentials: https, or plain http on loopback only.

Client secrets, assertions and bearer tokens are credentials; over plain http anyone on the path reads them
(RFC 6749 §1.6 and §2.3.1, RFC 6750 §5.3). So ``/oauth/*`` and every bearer-protected endpoint refuse plain
http unless

* both the client and the issuer are on loopback (a developer's machine, the demo, the benchmark), or
* ``BROKER_ALLOW_INSECURE_HTTP`` is set (a development setting, never for production).

Behind a TLS-terminating proxy the broker sees http from the proxy: ``X-Forwarded-Proto`` and
``X-Forwarded-For`` are honoured from the addresses in ``BROKER_TRUSTED_PROXIES`` and from nobody else
(uvicorn's ProxyHeadersMiddleware), so a client cannot claim https, or a loopback address, by sending the
header itself. Run uvicorn with ``proxy_headers=False`` so that only this list applies.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.requests import HTTPConnection
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from broker.settings import Settings


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host in ("127.0.0.1", "::1", "localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


@lru_cache(maxsize=8)
def _issuer_on_loopback(issuer: str) -> bool:
    return is_loopback(urlsplit(issuer).hostname)


def refusal(connection: HTTPConnection, settings: Settings) -> str | None:
    """Why this request may not carry OAuth credentials, or None when it may."""
    if connection.scope.get("scheme") == "https" or settings.allow_insecure_http:
        return None
    client = connection.client.host if connection.client else None
    if _issuer_on_loopback(settings.issuer) and is_loopback(client):
        return None
    return "OAuth credentials must travel over https (plain http is accepted on loopback only)"


def install(app: FastAPI, settings: Settings) -> None:
    """Honour forwarded headers from the configured proxies only (none by default)."""
    if settings.trusted_proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)

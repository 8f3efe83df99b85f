"""Starlette requests adapted to authlib's framework-neutral ``OAuth2Request`` and ``JsonRequest``.

authlib is synchronous and reads ``request.form`` as a plain mapping, so the body is read here, on the event
loop, before authlib runs in the thread pool. The reading is strict where RFC 6749 is (§3.2 and §3.1: form
encoding, each parameter at most once) and bounded, so a client cannot make the broker buffer megabytes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import defaultdict
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    InvalidRequestError,
    JsonPayload,
    JsonRequest,
    OAuth2Payload,
    OAuth2Request,
)
from starlette.datastructures import Headers
from starlette.requests import Request

from broker.oauth.errors import safe_description

FORM = "application/x-www-form-urlencoded"
MAX_BODY = 64 * 1024


class FormPayload(OAuth2Payload):
    def __init__(self, form: dict[str, str]) -> None:
        self._form = form

    @property
    def data(self) -> dict[str, str]:
        return self._form

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return defaultdict(list, {key: [value] for key, value in self._form.items()})


class FormRequest(OAuth2Request):
    """An OAuth request whose body has already been read and parsed."""

    def __init__(self, method: str, uri: str, headers: Headers, form: dict[str, str], args: dict[str, str]) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self.payload = FormPayload(form)
        self._form = form
        self._args = args

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return self._args


class JsonBodyPayload(JsonPayload):
    def __init__(self, data: Any) -> None:
        self._data = data

    @property
    def data(self) -> Any:
        return self._data


class JsonBodyRequest(JsonRequest):
    def __init__(self, method: str, uri: str, headers: Headers, data: Any) -> None:
        super().__init__(method, uri, headers)
        self.payload = JsonBodyPayload(data)


async def _body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise InvalidRequestError("The request body is too large.")
        chunks.append(chunk)
    return b"".join(chunks)


def _unique(pairs: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidRequestError(safe_description(f"Parameter {key[:40]} is repeated."))
        out[key] = value
    return out


async def read_form_request(request: Request, uri: str) -> FormRequest:
    """The request as authlib wants it; ``uri`` is what authlib's own https check sees (see server.py)."""
    form: dict[str, str] = {}
    if request.method == "POST":
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != FORM:
            raise InvalidRequestError(f"The request body must be {FORM}.")
        try:
            form = _unique(parse_qsl((await _body(request)).decode("utf-8"), keep_blank_values=True,
                                     strict_parsing=False))
        except UnicodeDecodeError as exc:
            raise InvalidRequestError("The request body is not UTF-8.") from exc
    _check_basic_credentials(request.headers)
    args = _unique(list(request.query_params.multi_items()))
    return FormRequest(request.method, uri, request.headers, form, args)


def _check_basic_credentials(headers: Headers) -> None:
    """HTTP Basic credentials must be base64 of UTF-8 (RFC 7617 §2.1 with RFC 6749 §2.3.1): authlib decodes them
    without catching a non-UTF-8 byte, which would otherwise end as a 500."""
    scheme, _, credentials = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "basic":
        return
    try:
        base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise InvalidClientError(description="The Basic credentials are not base64 of UTF-8 text.",
                                 status_code=401) from None


async def read_json_request(request: Request, uri: str) -> JsonBodyRequest:
    try:
        data = json.loads(await _body(request) or b"null")
    except ValueError as exc:
        raise InvalidRequestError("The request body is not JSON.") from exc
    return JsonBodyRequest(request.method, uri, request.headers, data)

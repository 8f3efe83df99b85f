"""OAuth throughput: tokens issued per second, and validated requests per second on a protected endpoint.

One uvicorn worker (``consent-broker serve``) on loopback over a fresh SQLite data directory (``db upgrade``
and one registered ``private_key_jwt`` client), driven over HTTP/1.1 with a few concurrent keep-alive
connections from this process (a minimal client, see :class:`Connection`). Each figure is the median of
three runs and is printed beside the raw cost of the one ES256 operation it contains, measured in the same
run on the same machine:

* ``POST /oauth/token``: one client assertion verified (ES256) and one access token signed (ES256), plus
  HTTP, authlib, a read of the client and the writes of both jtis (group-committed on SQLite);
* ``GET /v1/client``: one access token verified (ES256), plus HTTP, FastAPI and one database read
  (revocation and client state).

Assertions are signed before the clock starts (signing them is the client's cost, not the broker's).
Targets on the reference 2-core machine: >= 300 tokens/s and >= 800 validated requests/s.

Usage: ``python bench/oauth.py [--seconds 3] [--concurrency 8]``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from broker.commands.db import upgrade_runtime  # noqa: E402
from broker.db import session_scope  # noqa: E402
from broker.oauth.registration import ClientRegistry  # noqa: E402
from broker.runtime import Runtime  # noqa: E402
from broker.settings import Settings  # noqa: E402

TOKEN_TARGET = 300
VALIDATION_TARGET = 800
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare(data_dir: Path, issuer: str) -> tuple[dict[str, str], str, ECKey]:
    """A migrated database with one registered client; the environment that serves it."""
    env = {**os.environ, "BROKER_DATA_DIR": str(data_dir), "BROKER_POLICY_DIR": str(ROOT / "policies"),
           "BROKER_ISSUER": issuer}
    env.pop("BROKER_DATABASE_URL", None)
    runtime = Runtime.from_settings(Settings(data_dir=data_dir, policy_dir=ROOT / "policies", issuer=issuer))
    upgrade_runtime(runtime)
    service = next(s for s in runtime.policy.services if s.kind == "service" and s.auth_method == "private_key_jwt")
    key = ECKey.generate_key("P-256", private=True, auto_kid=True)
    with session_scope(runtime.engine) as session:
        ClientRegistry(session, runtime.policy).register(
            service.id, jwks=json.dumps({"keys": [key.as_dict(private=False)]}), now=runtime.clock.now())
    runtime.engine.dispose()
    return env, service.id, key


@contextmanager
def server(env: dict[str, str], port: int) -> Iterator[None]:
    process = subprocess.Popen([sys.executable, "-m", "broker.cli", "serve", "--port", str(port)], env=env,
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def assertions(key: ECKey, client_id: str, audience: str, count: int) -> list[str]:
    now = int(time.time())
    return [jwt.encode({"alg": "ES256", "kid": key.kid},
                       {"iss": client_id, "sub": client_id, "aud": audience, "iat": now, "exp": now + 240,
                        "jti": secrets.token_urlsafe(16)}, key)
            for _ in range(count)]


class Connection:
    """A minimal HTTP/1.1 keep-alive client connection.

    The load generator runs on the same two cores as the server, so it must cost little: httpx spends more
    CPU per request than the broker's protected endpoint does (about 1 000 requests/s is all it can drive
    here, against an empty app), which would measure the client, not the broker. httpx still checks the
    server before the runs (``check``). Every response's status is checked and its body read in full.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return int(head.split(b" ", 2)[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def http_request(method: str, port: int, path: str, headers: dict[str, str] | None = None,
                 form: dict[str, str] | None = None) -> bytes:
    body = urlencode(form).encode() if form is not None else b""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if form is not None:
        lines += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _drive(port: int, concurrency: int, seconds: float, requests: Iterator[bytes]) -> float:
    """Requests per second over ``seconds``, from ``concurrency`` keep-alive connections."""
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        connection = await Connection.open(port)
        try:
            while time.perf_counter() < stop:
                status, body = await connection.exchange(next(requests))
                if status != 200:
                    raise RuntimeError(f"{status}: {body[:200]!r}")
                done += 1
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


def tokens_per_second(port: int, key: ECKey, client_id: str, concurrency: int, seconds: float) -> float:
    audience = f"http://127.0.0.1:{port}/oauth/token"
    requests = iter([http_request("POST", port, "/oauth/token", form={
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": signed})
        for signed in assertions(key, client_id, audience, int(seconds * 2500))])
    return asyncio.run(_drive(port, concurrency, seconds, requests))


def validations_per_second(port: int, token: str, concurrency: int, seconds: float) -> float:
    request = http_request("GET", port, "/v1/client", headers={"Authorization": f"Bearer {token}"})
    return asyncio.run(_drive(port, concurrency, seconds, itertools.repeat(request)))


def check(base: str, key: ECKey, client_id: str) -> str:
    """One token with httpx, used once on the protected endpoint: the server answers as it should."""
    response = httpx.post(base + "/oauth/token", data={
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertions(key, client_id, base + "/oauth/token", 1)[0]})
    response.raise_for_status()
    token = response.json()["access_token"]
    httpx.get(base + "/v1/client", headers={"Authorization": f"Bearer {token}"}).raise_for_status()
    return token


def raw_es256(seconds: float = 1.0) -> tuple[float, float]:
    """ES256 sign and verify of an access-token-sized JWT, with joserfc, in ops/s."""
    key = ECKey.generate_key("P-256", private=True, auto_kid=True)
    claims = {"iss": "http://127.0.0.1:8000", "aud": "http://127.0.0.1:8000/v1", "sub": "mobility",
              "client_id": "mobility", "iat": 1, "exp": 2, "jti": "x" * 22, "scope": "purpose:a purpose:b"}
    header = {"alg": "ES256", "typ": "at+jwt", "kid": key.kid}
    count, stop = 0, time.perf_counter() + seconds
    while time.perf_counter() < stop:
        token = jwt.encode(header, claims, key, algorithms=["ES256"])
        count += 1
    sign = count / seconds
    public = ECKey.import_key(key.as_dict(private=False))
    count, stop = 0, time.perf_counter() + seconds
    while time.perf_counter() < stop:
        jwt.decode(token, public, algorithms=["ES256"])
        count += 1
    return sign, count / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each run")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent keep-alive clients")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-oauth-") as tmp:
        env, client_id, key = prepare(Path(tmp), base)
        with server(env, port):
            token = check(base, key, client_id)
            tokens_per_second(port, key, client_id, args.concurrency, 0.5)  # warm up
            validations_per_second(port, token, args.concurrency, 0.5)
            runs = []
            for _ in range(3):
                runs.append((tokens_per_second(port, key, client_id, args.concurrency, args.seconds),
                             validations_per_second(port, token, args.concurrency, args.seconds),
                             *raw_es256()))

    issued, validated, sign, verify = (statistics.median(r[i] for r in runs) for i in range(4))
    print(f"one uvicorn worker on loopback, SQLite, {args.concurrency} keep-alive connections, "
          f"median of 3 runs of {args.seconds:g} s; {os.cpu_count()} CPUs, load average before "
          f"{load_before:.2f}, after {os.getloadavg()[0]:.2f}")
    print(f"tokens issued       {issued:8.0f} /s   target >= {TOKEN_TARGET}: "
          f"{'met' if issued >= TOKEN_TARGET else 'SHORT'}")
    print(f"  raw ES256 sign    {sign:8.0f} /s   one token costs {sign / issued:5.1f} signatures")
    print(f"validated requests  {validated:8.0f} /s   target >= {VALIDATION_TARGET}: "
          f"{'met' if validated >= VALIDATION_TARGET else 'SHORT'}")
    print(f"  raw ES256 verify  {verify:8.0f} /s   one request costs {verify / validated:5.1f} verifications")
    print("runs (tokens/s, validated/s):", ", ".join(f"({a:.0f}, {b:.0f})" for a, b, *_ in runs))


if __name__ == "__main__":
    main()

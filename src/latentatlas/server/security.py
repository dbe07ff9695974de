"""What stands between the explorer and a hostile page or request: an ASGI middleware that

- answers only requests whose ``Host`` is a name the server was bound as (loopback names by default, what
  ``--host`` gave otherwise), so a DNS-rebinding page (``Host: evil.example`` pointing at 127.0.0.1) gets
  nothing, as Jupyter and Datasette do;
- refuses state-changing requests whose ``Origin`` is another site's (a page elsewhere posting to the
  local server);
- bounds request bodies (``Content-Length`` and the bytes actually streamed), 413 beyond the limit;
- adds a Content-Security-Policy that forbids inline script and every origin but the server's own,
  ``X-Content-Type-Options: nosniff``, frame denial and no referrer, to every answer.

Every refusal is one sentence as JSON, like every other error the server gives.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from typing import Iterable

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::", "")
MAX_BODY = 1 << 20  # 1 MiB: the largest body any route takes is a 4,000-character text or a latent vector

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def host_name(value: str) -> str:
    """``"127.0.0.1:8765"`` → ``"127.0.0.1"``, ``"[::1]:8765"`` → ``"::1"``, lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value  # a bare IPv6 address, or a name without a port


def allowed_hosts(bound: str = "127.0.0.1", extra: Iterable[str] = ()) -> frozenset[str]:
    """The ``Host`` names a server bound to ``bound`` answers to: the loopback names always, the bound
    name, and for a wildcard bind (0.0.0.0, ::) this machine's host name and addresses."""
    names = {*LOOPBACK_NAMES, host_name(bound), *(host_name(e) for e in extra)}
    if bound in WILDCARD:
        try:
            hostname = socket.gethostname()
            names.add(hostname.lower())
            names.update(a for a in socket.gethostbyname_ex(hostname)[2])
            names.add(socket.getfqdn().lower())
        except OSError:
            pass
    return frozenset(n for n in names if n)


def _is_loopback(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return name == "localhost"


def headers_for(frame_ancestors: Iterable[str] = ()) -> list[tuple[bytes, bytes]]:
    """The headers added to every answer. ``frame_ancestors`` (e.g. a notebook's ``http://localhost:*``)
    lets those pages show the explorer in a frame; by default no page may."""
    ancestors = tuple(frame_ancestors)
    if not ancestors:
        return HEADERS
    for a in ancestors:
        if not all(c.isalnum() or c in ":/*.-[]" for c in a):
            raise ValueError(f"frame ancestor '{a}' is not an origin pattern (scheme://host:port, '*' for any port)")
    csp = CSP.replace("frame-ancestors 'none'", "frame-ancestors 'self' " + " ".join(ancestors))
    return [(b"content-security-policy", csp.encode()), *((k, v) for k, v in HEADERS if k not in (b"content-security-policy", b"x-frame-options"))]


class SecurityMiddleware:
    def __init__(self, app, hosts: frozenset[str], max_body: int = MAX_BODY, frame_ancestors: tuple[str, ...] = ()):
        self.app = app
        self.hosts = hosts
        self.max_body = max_body
        self.headers = headers_for(frame_ancestors)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.lower(): v for k, v in scope.get("headers", [])}

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                message = {**message, "headers": [*message.get("headers", []), *((k, v) for k, v in self.headers if k not in have)]}
            await send(message)

        host = host_name(headers.get(b"host", b"").decode("latin-1"))
        if host not in self.hosts:
            return await _refuse(send_with_headers, 403, f"host '{host or '(none)'}' is not a name this server answers to; "
                                 f"it serves {', '.join(sorted(self.hosts))} (start it with --host NAME to serve another)")
        origin = headers.get(b"origin")
        if origin is not None and scope.get("method") not in ("GET", "HEAD", "OPTIONS"):
            origin_host = host_name(origin.decode("latin-1").split("://", 1)[-1].split("/", 1)[0])
            if origin_host not in self.hosts and not (_is_loopback(origin_host) and _is_loopback(host)):
                return await _refuse(send_with_headers, 403, f"requests from the page at '{origin.decode('latin-1')}' are refused; "
                                     "only the explorer's own pages may change anything")
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                return await _refuse(send_with_headers, 400, "the Content-Length header is not a number")
            if too_big:
                return await _refuse(send_with_headers, 413, f"the request body is {int(length):,} bytes; this server takes at most {self.max_body:,}")

        # The body (at most max_body bytes) is read here, before the app sees the request, so a body that
        # turns out too long is refused whole and the app never holds more than the limit.
        chunks, seen = [], 0
        if scope.get("method") not in ("GET", "HEAD"):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    break
                chunks.append(message.get("body", b""))
                seen += len(chunks[-1])
                if seen > self.max_body:
                    return await _refuse(send_with_headers, 413, f"the request body is over {self.max_body:,} bytes; this server takes at most {self.max_body:,}")
                if not message.get("more_body", False):
                    break
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send_with_headers)


async def _refuse(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

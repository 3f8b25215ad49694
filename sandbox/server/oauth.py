"""``POST /oauth/token``: client-credentials tokens with a configurable lifetime [S-OAUTH]."""

from __future__ import annotations

import math
import secrets
import threading
import time
from urllib.parse import parse_qs

from sandbox.server.wire import Response, auth_error, json_response

SCOPE = ("user.7c4d0d8c2f1e4b8a9d3e5f6a7b8c9d0e entity.1a2b7a37-3e7d-4cb3-b0e2-883de9e766cc "
         "service.echo.read tenant.19")


class TokenIssuer:
    def __init__(self, client_id: str, client_secret: str, ttl: float) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.ttl = float(ttl)
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._lock = threading.Lock()

    def issue(self, body: bytes, content_type: str) -> Response:
        if "application/x-www-form-urlencoded" not in (content_type or ""):
            return json_response({"message": "Content-Type must be "
                                  "application/x-www-form-urlencoded"}, 400)
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "client_credentials":
            return json_response({"error": "unsupported_grant_type",
                                  "message": "grant_type must be client_credentials"}, 400)
        if (form.get("client_id") != self.client_id
                or form.get("client_secret") != self.client_secret):
            return json_response({"message": "Authentication error"}, 401)
        token = secrets.token_hex(16)
        with self._lock:
            now = time.monotonic()
            self._tokens = {t: e for t, e in self._tokens.items() if e > now}
            self._tokens[token] = now + self.ttl
        return json_response({
            "access_token": token, "token_type": "bearer",
            "expires_in": max(1, math.floor(self.ttl)), "scope": SCOPE,
            "jti": secrets.token_hex(16),
        })

    def check(self, authorization: str | None) -> Response | None:
        """None when the bearer is valid, else the 401 to send."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return auth_error()
        with self._lock:
            expiry = self._tokens.get(token.strip())
        if expiry is None or expiry <= time.monotonic():
            return auth_error()
        return None

    def expire_all(self) -> None:
        with self._lock:
            self._tokens.clear()

"""Talking to the Zuora sandbox over HTTP in tests: its OAuth token for the default client."""

from __future__ import annotations

import requests

from sandbox.server import SandboxServer


def get_token(srv: SandboxServer) -> requests.Response:
    """The sandbox's OAuth token response for the default client (``recon``/``sandbox-secret``)."""
    return requests.post(f"{srv.url}/oauth/token", data={
        "client_id": "recon", "client_secret": "sandbox-secret",
        "grant_type": "client_credentials"})


def token(srv: SandboxServer) -> str:
    """A bearer token, asserting the token endpoint said 200."""
    r = get_token(srv)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]

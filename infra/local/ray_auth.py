"""Token authentication of a local Ray cluster.

Ray 2.60 supports token auth (``RAY_AUTH_MODE=token``). A fresh random token is generated per
cluster and passed as ``RAY_AUTH_TOKEN`` to every node; clients get the same variables (see
``RayCluster.env``) and send the token as a Bearer header to the dashboard's REST API. Nothing
is read from or written to ``~/.ray/auth_token``, so clusters of concurrent test sessions never
share a token.
"""

from __future__ import annotations

import secrets


def new_token() -> str:
    """A fresh random cluster token (64 hex characters)."""
    return secrets.token_hex(32)


def auth_env(token: str) -> dict[str, str]:
    """The variables any Ray process or client of the cluster needs to authenticate."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}


def auth_headers(token: str) -> dict[str, str]:
    """HTTP headers for the dashboard / job / state REST API."""
    return {"Authorization": f"Bearer {token}"}

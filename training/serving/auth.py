"""Who may call the service: a bearer token at the HTTP ingress, pure functions, no Ray.

The ingress requires ``Authorization: Bearer TOKEN`` on every ``/v1/*`` route when the service
has a token; ``GET /healthz`` stays open (load balancers and Kubernetes probes do not carry
secrets, and it says nothing but ``ok``). :func:`service_token` finds the token, in this order:

1. ``--token-file PATH`` (a file holding the token; surrounding white space is dropped);
2. the environment variable ``RAYSF_SERVE_TOKEN``;
3. the cluster's own Ray token when the cluster runs with token auth (``RAY_AUTH_MODE=token``,
   as ``infra/`` sets up every cluster): ``RAY_AUTH_TOKEN``, the file ``RAY_AUTH_TOKEN_PATH``,
   or ``~/.ray/auth_token``, the order Ray itself reads them in.

Ray 2.60 turns token auth on by default for a local ``ray.init()`` (it writes
``~/.ray/auth_token`` and sets ``RAY_AUTH_MODE=token``), so ``raysf serve`` looks for the token
after Ray has started: on a default local instance the service then requires that token too.

``auth="token"`` makes a token mandatory (an error names where one was looked for);
``auth="none"`` serves without one even on a token-auth cluster; ``auth="auto"`` (the
default) requires one exactly when one is found. A token is compared in constant time and never
appears in logs, answers or ``GET /v1/model`` (which reports ``"auth": "token"`` or
``"none"``).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from pathlib import Path

from training.serving.admission import RequestError

AUTH_MODES = ("auto", "token", "none")
#: The environment variable holding a token for the service alone.
TOKEN_ENV = "RAYSF_SERVE_TOKEN"
#: Where Ray keeps a cluster's token when neither variable names it.
RAY_DEFAULT_TOKEN = Path("~/.ray/auth_token")


def _read_token(path: str | os.PathLike, what: str) -> str:
    try:
        token = Path(path).expanduser().read_text().strip()
    except OSError as exc:
        raise ValueError(f"{what} {path}: cannot be read: {exc.strerror or exc}") from exc
    if not token:
        raise ValueError(f"{what} {path}: is empty")
    return token


def cluster_token(env: Mapping[str, str]) -> tuple[str, str] | None:
    """The Ray cluster's token and where it was read when ``env`` runs with token auth, else
    ``None``."""
    if env.get("RAY_AUTH_MODE", "").lower() != "token":
        return None
    if env.get("RAY_AUTH_TOKEN", "").strip():
        return env["RAY_AUTH_TOKEN"].strip(), "the cluster's RAY_AUTH_TOKEN"
    if env.get("RAY_AUTH_TOKEN_PATH"):
        path = env["RAY_AUTH_TOKEN_PATH"]
        return _read_token(path, "RAY_AUTH_TOKEN_PATH"), f"the cluster's token file {path}"
    if RAY_DEFAULT_TOKEN.expanduser().is_file():
        token = _read_token(RAY_DEFAULT_TOKEN, "Ray's token file")
        return token, f"the cluster's token file {RAY_DEFAULT_TOKEN}"
    raise ValueError(
        "RAY_AUTH_MODE=token but no token in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or "
        f"{RAY_DEFAULT_TOKEN}"
    )


def service_token(
    auth: str = "auto", token_file: str | None = None, env: Mapping[str, str] | None = None
) -> tuple[str | None, str]:
    """The token the ingress requires (module docstring), or ``None`` for an open service, and
    where it came from (said at start, never the token); ``ValueError`` naming the file or
    setting when ``auth`` or a token source is bad."""
    if auth not in AUTH_MODES:
        raise ValueError(f"auth must be one of {AUTH_MODES}, got {auth!r}")
    if auth == "none":
        if token_file:
            raise ValueError("--token-file given with --auth none")
        return None, "--auth none"
    env = os.environ if env is None else env
    if token_file:
        found = _read_token(token_file, "--token-file"), f"--token-file {token_file}"
    elif env.get(TOKEN_ENV, "").strip():
        found = env[TOKEN_ENV].strip(), TOKEN_ENV
    else:
        found = cluster_token(env)
    if found is None and auth == "token":
        raise ValueError(
            f"--auth token: no token found (--token-file, {TOKEN_ENV}, or the cluster's "
            "RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH with RAY_AUTH_MODE=token)"
        )
    return found or (None, "no token found and the cluster runs without token auth")


def check_bearer(header: str | None, token: str | None) -> None:
    """Nothing when ``token`` is ``None`` or ``header`` is ``Bearer <token>``; otherwise 401
    ``unauthorized`` (the comparison takes the same time wherever the two differ)."""
    if token is None:
        return
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise RequestError(401, "unauthorized", "this service needs 'Authorization: Bearer TOKEN'")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise RequestError(401, "unauthorized", "the bearer token is not this service's")

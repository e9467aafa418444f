"""The ingress's bearer token: where it is found, and how a request's header is checked."""

from __future__ import annotations

import pytest

from training.serving import auth
from training.serving.admission import RequestError


@pytest.fixture(autouse=True)
def no_ray_default_token(tmp_path, monkeypatch):
    """``~/.ray/auth_token`` of this machine must not leak into the tests."""
    monkeypatch.setattr(auth, "RAY_DEFAULT_TOKEN", tmp_path / "no-such-token")


def test_the_token_is_found_in_order(tmp_path):
    token_file = tmp_path / "serve.token"
    token_file.write_text("  from-file\n")
    ray_file = tmp_path / "ray.token"
    ray_file.write_text("from-ray-file\n")
    cluster = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "from-cluster"}
    assert auth.service_token("auto", str(token_file), cluster) == (
        "from-file",
        f"--token-file {token_file}",
    )
    mine = auth.service_token("auto", None, {**cluster, auth.TOKEN_ENV: "mine"})
    assert mine == ("mine", "RAYSF_SERVE_TOKEN")
    assert auth.service_token("auto", None, cluster) == (
        "from-cluster",
        "the cluster's RAY_AUTH_TOKEN",
    )
    by_path = {"RAY_AUTH_MODE": "TOKEN", "RAY_AUTH_TOKEN_PATH": str(ray_file)}
    token, origin = auth.service_token("auto", None, by_path)
    assert token == "from-ray-file" and str(ray_file) in origin
    # a cluster without token auth, and no token of the service's own: an open service
    assert auth.service_token("auto", None, {"RAY_AUTH_TOKEN": "unused"})[0] is None
    assert auth.service_token("none", None, cluster) == (None, "--auth none")


def test_ray_s_default_token_file_is_read_on_a_token_cluster(tmp_path, monkeypatch):
    default = tmp_path / "auth_token"
    default.write_text("from-home\n")
    monkeypatch.setattr(auth, "RAY_DEFAULT_TOKEN", default)
    assert auth.service_token("auto", None, {"RAY_AUTH_MODE": "token"})[0] == "from-home"


@pytest.mark.parametrize(
    "mode, token_file, env, message",
    [
        ("token", None, {}, "no token found"),
        ("none", "x.token", {}, "--auth none"),
        ("open", None, {}, "auth must be one of"),
        ("auto", "missing.token", {}, "--token-file .*missing.token: cannot be read"),
        ("auto", None, {"RAY_AUTH_MODE": "token"}, "RAY_AUTH_MODE=token but no token"),
        ("auto", None, {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": "/nope"}, "/nope"),
    ],
)
def test_bad_token_settings_are_named(tmp_path, monkeypatch, mode, token_file, env, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        auth.service_token(mode, token_file, env)


def test_an_empty_token_file_is_refused(tmp_path):
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="empty.token: is empty"):
        auth.service_token("auto", str(empty), {})


@pytest.mark.parametrize(
    "header, detail",
    [
        (None, "needs 'Authorization: Bearer TOKEN'"),
        ("", "needs"),
        ("Basic c2VjcmV0", "needs"),
        ("Bearer ", "needs"),
        ("Bearer secreT", "not this service's"),
        ("Bearer secret-and-more", "not this service's"),
    ],
)
def test_a_request_without_the_token_is_401(header, detail):
    with pytest.raises(RequestError, match=detail) as refused:
        auth.check_bearer(header, "secret")
    assert (refused.value.status, refused.value.reason) == (401, "unauthorized")


def test_the_right_token_or_an_open_service_passes():
    auth.check_bearer("Bearer secret", "secret")
    auth.check_bearer("bearer  secret ", "secret")
    auth.check_bearer(None, None)
    auth.check_bearer("Bearer anything", None)

"""``raysf serve``'s command line becomes one typed, validated service config (no Ray)."""

from __future__ import annotations

import pytest

from jobs import serve
from training.serving import auth


@pytest.fixture(autouse=True)
def no_tokens_from_this_machine(tmp_path, monkeypatch):
    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", auth.TOKEN_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(auth, "RAY_DEFAULT_TOKEN", tmp_path / "no-such-token")


def test_arguments_become_the_service_config(tmp_path):
    args = serve.parse_args(
        [
            "model.pt",
            "--port",
            "9001",
            "--replicas",
            "2",
            "--max-replicas",
            "4",
            "--device",
            "cuda",
            "--allow-uri",
            str(tmp_path),
            "--allow-uri",
            "s3://bucket/videos",
            "--max-bytes",
            "1000000",
            "--max-inflight",
            "3",
        ]
    )
    cfg = serve.serve_config(args)
    assert (cfg.port, cfg.replicas, cfg.max_replicas, cfg.device) == (9001, 2, 4, "cuda")
    assert cfg.model.checkpoint == "model.pt" and cfg.model.source == "raysf"
    assert cfg.limits.allowed_uris == (str(tmp_path), "s3://bucket/videos")
    assert cfg.limits.ingest.max_bytes == 1_000_000 and cfg.limits.max_inflight == 3
    assert cfg.limits.ingest.max_duration_s == 600.0  # the ingest's default
    described = cfg.describe()
    assert described["limits"]["max_bytes"] == 1_000_000 and described["max_replicas"] == 4


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--replicas", "0"], "replicas"),
        (["--replicas", "3", "--max-replicas", "2"], "max_replicas"),
        (["--allow-uri", "relative/dir"], "absolute"),
        (["--max-inflight", "0"], "max_inflight"),
    ],
)
def test_bad_values_are_named(extra, message):
    with pytest.raises(ValueError, match=message):
        serve.serve_config(serve.parse_args(["model.pt", *extra]))


def test_a_checkpoint_is_required_unless_smoke_testing(capsys):
    with pytest.raises(SystemExit):
        serve.parse_args([])
    assert "CHECKPOINT is required" in capsys.readouterr().err
    assert serve.parse_args(["--smoke-test"]).checkpoint is None


def test_on_a_token_auth_cluster_the_ingress_needs_the_token(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "cluster-secret")
    cfg = serve.serve_config(serve.parse_args(["model.pt"]))
    assert cfg.token == "cluster-secret" and cfg.describe()["auth"] == "token"
    assert "cluster-secret" not in repr(cfg) and "cluster-secret" not in str(cfg.describe())
    token_file = tmp_path / "serve.token"
    token_file.write_text("service-secret\n")
    args = serve.parse_args(["model.pt", "--token-file", str(token_file)])
    assert serve.serve_config(args).token == "service-secret"
    opened = serve.serve_config(serve.parse_args(["model.pt", "--auth", "none"]))
    assert opened.token is None and opened.describe()["auth"] == "none"


def test_auth_token_without_a_token_is_an_error():
    assert serve.serve_config(serve.parse_args(["model.pt"])).token is None
    with pytest.raises(ValueError, match="no token found"):
        serve.serve_config(serve.parse_args(["model.pt", "--auth", "token"]))

"""Static checks of the AWS cluster-launcher definition ``infra/aws/cluster.yaml`` (no cloud needed).

The file is validated the way ``ray up`` validates it: against the JSON schema shipped inside the
installed ``ray`` package, then through Ray's own ``prepare_config`` + ``validate_config``. The
negative tests break a copy of it to show that the validation catches errors.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import ray.autoscaler
import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER_YAML = REPO / "infra" / "aws" / "cluster.yaml"

# --------------------------------------------------------------------------- helpers


def ray_schema() -> dict[str, Any]:
    """The cluster-launcher schema of the installed ray (never a vendored copy)."""
    path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    return json.loads(path.read_text())


def validate_cluster_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate like ``ray up``: raw schema check, then Ray's fill-defaults + validate.

    Returns the prepared (defaults-filled) config; raises ``jsonschema.ValidationError``.
    """
    from ray.autoscaler._private.util import prepare_config, validate_config

    jsonschema.validate(config, ray_schema())
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


# --------------------------------------------------------------------------- AWS launcher


@pytest.fixture(scope="module")
def cluster_config() -> dict[str, Any]:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_cluster_yaml_validates_against_ray_schema(cluster_config):
    prepared = validate_cluster_config(cluster_config)
    assert prepared["provider"]["type"] == "aws"


def test_cluster_yaml_node_types(cluster_config):
    types = cluster_config["available_node_types"]
    head = types[cluster_config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}, "the head must not schedule tasks"
    gpu = [t for t in types.values() if "train_node" in t["resources"]]
    decode = [t for t in types.values() if "decode_node" in t["resources"]]
    assert len(gpu) == 1 and len(decode) == 1
    assert gpu[0]["resources"].get("GPU", 0) >= 1
    assert decode[0]["resources"].get("GPU", 0) == 0 and decode[0]["resources"]["CPU"] > 0
    total_max = 0
    for t in (gpu[0], decode[0]):
        assert 0 <= t["min_workers"] <= t["max_workers"]
        total_max += t["max_workers"]
    assert total_max <= cluster_config["max_workers"]


def test_cluster_yaml_installs_project_and_has_no_keys(cluster_config):
    for name, t in cluster_config["available_node_types"].items():
        assert "IamInstanceProfile" in t["node_config"], f"{name}: S3 access needs an IAM profile"
    assert "-c constraints.txt -e ." in " ".join(cluster_config["setup_commands"])
    gpu = next(
        t for t in cluster_config["available_node_types"].values() if "train_node" in t["resources"]
    )
    assert "-c infra/docker/constraints-gpu.txt -e ." in " ".join(gpu["worker_setup_commands"])
    assert gpu["docker"]["worker_image"].startswith(f"rayproject/ray:{ray.__version__}-")
    assert cluster_config["docker"]["image"].startswith(f"rayproject/ray:{ray.__version__}-")
    run_options = " ".join(cluster_config["docker"]["run_options"])
    assert "MLFLOW_TRACKING_URI=" in run_options
    assert "AWS_SECRET_ACCESS_KEY" not in CLUSTER_YAML.read_text().upper()


def _break_unknown_key(c):
    c["not_a_ray_field"] = 1


def _break_negative_resource(c):
    c["available_node_types"]["decode"]["resources"]["CPU"] = -4


def _break_string_resource(c):
    c["available_node_types"]["gpu"]["resources"]["GPU"] = "eight"


def _break_missing_provider(c):
    del c["provider"]


def _break_missing_node_config(c):
    del c["available_node_types"]["gpu"]["node_config"]


@pytest.mark.parametrize(
    "breaker",
    [
        _break_unknown_key,
        _break_negative_resource,
        _break_string_resource,
        _break_missing_provider,
        _break_missing_node_config,
    ],
)
def test_schema_rejects_broken_cluster_config(cluster_config, breaker):
    broken = copy.deepcopy(cluster_config)
    breaker(broken)
    with pytest.raises(jsonschema.ValidationError):
        validate_cluster_config(broken)

"""Security checks of every definition under ``infra/`` (no cloud, cluster or network needed).

For each cluster, server and policy definition: Ray token authentication on, no ingress open to
the world (AWS security groups, Kubernetes NetworkPolicies and Services, listen addresses),
MLflow behind its basic-auth app, and least-privilege IAM (training nodes cannot delete source
videos or touch MLflow's prefix; MLflow reaches its own prefix only). The threat model these
encode is the table in docs/cluster.md.

Each checker returns a list of problems, so the negative tests can show that it catches the
mistake it is there for.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
CLUSTER_YAML = INFRA / "aws" / "cluster.yaml"
SECURITY_GROUPS = INFRA / "aws" / "security-groups.yaml"
POLICIES = {name: INFRA / "aws" / f"iam-{name}-policy.json" for name in ("node", "mlflow", "head")}
K8S_FILES = sorted((INFRA / "k8s").glob("*.yaml")) + sorted((INFRA / "mlflow").glob("*.yaml"))
WORLD = {"0.0.0.0/0", "::/0"}
BUCKET = "arn:aws:s3:::raysf-data"
POD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "Pod")

# --------------------------------------------------------------------------- loading


def k8s_docs() -> list[dict[str, Any]]:
    return [d for p in K8S_FILES for d in yaml.safe_load_all(p.read_text()) if d]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def ray_cluster_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every RayCluster spec, the RayJobs' inline ones included, by object name."""
    specs = {d["metadata"]["name"]: d["spec"] for d in of_kind(docs, "RayCluster")}
    for job in of_kind(docs, "RayJob"):
        if "rayClusterSpec" in job["spec"]:
            specs[job["metadata"]["name"]] = job["spec"]["rayClusterSpec"]
    return specs


def pod_templates(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """name -> pod template of every Ray node group, Deployment and StatefulSet."""
    found = {}
    for name, spec in ray_cluster_specs(docs).items():
        found[f"{name}/head"] = spec["headGroupSpec"]["template"]
        for group in spec.get("workerGroupSpecs", []):
            found[f"{name}/{group['groupName']}"] = group["template"]
    for doc in docs:
        if doc.get("kind") in POD_KINDS and doc["kind"] != "Pod":
            found[doc["metadata"]["name"]] = doc["spec"]["template"]
    return found


# --------------------------------------------------------------------------- checkers


def ray_auth_problems(name: str, spec: dict[str, Any]) -> list[str]:
    """Token auth through KubeRay's authOptions, its token from a named Secret."""
    auth = spec.get("authOptions") or {}
    problems = []
    if auth.get("mode") != "token":
        problems.append(f"{name}: authOptions.mode must be 'token'")
    if not auth.get("secretName"):
        problems.append(f"{name}: authOptions.secretName must name the token's Secret")
    if "disabled" in json.dumps(spec).lower():
        problems.append(f"{name}: something in the spec says 'disabled'")
    return problems


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels + Exists/In matchExpressions)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op = expr["key"], expr["operator"]
        if op == "Exists" and key not in labels:
            return False
        if op == "In" and labels.get(key) not in expr.get("values", []):
            return False
    return True


def network_policy_problems(docs: list[dict[str, Any]]) -> list[str]:
    """A default deny; every pod selected by a policy; every rule names pods or namespaces."""
    policies = of_kind(docs, "NetworkPolicy")
    problems = []
    if not any(
        p["spec"].get("podSelector") == {} and not p["spec"].get("ingress")
        for p in policies
        if "Ingress" in p["spec"].get("policyTypes", [])
    ):
        problems.append("no default-deny ingress policy (podSelector {} without rules)")
    for name, template in pod_templates(docs).items():
        labels = (template.get("metadata") or {}).get("labels") or {}
        chosen = [
            p
            for p in policies
            if p["spec"]["podSelector"] and _selects(p["spec"]["podSelector"], labels)
        ]
        if not chosen:
            problems.append(f"{name}: no NetworkPolicy selects its pods (labels {labels})")
    for policy in policies:
        where = policy["metadata"]["name"]
        for i, rule in enumerate(policy["spec"].get("ingress") or []):
            sources = rule.get("from") or []
            if not sources:
                problems.append(f"{where}.ingress[{i}]: no `from`: admits every source")
            for src in sources:
                block = src.get("ipBlock") or {}
                if block.get("cidr") in WORLD:
                    problems.append(f"{where}.ingress[{i}]: ipBlock {block['cidr']}")
                if not (src.get("podSelector") or src.get("namespaceSelector") or block):
                    problems.append(f"{where}.ingress[{i}]: a source that selects everything")
    return problems


def service_problems(docs: list[dict[str, Any]]) -> list[str]:
    problems = [f"{d['metadata']['name']}: Ingress object" for d in of_kind(docs, "Ingress")]
    for svc in of_kind(docs, "Service"):
        kind = svc["spec"].get("type", "ClusterIP")
        if kind in ("LoadBalancer", "NodePort"):
            problems.append(f"{svc['metadata']['name']}: Service of type {kind}")
    for name, spec in ray_cluster_specs(docs).items():
        kind = spec["headGroupSpec"].get("serviceType", "ClusterIP")
        if kind != "ClusterIP":
            problems.append(f"{name}: head serviceType {kind}")
    return problems


def security_group_problems(template: dict[str, Any]) -> list[str]:
    """No ingress from 0.0.0.0/0 or ::/0, in groups and in stand-alone ingress rules."""
    problems = []
    for name, res in (template.get("Resources") or {}).items():
        props = res.get("Properties") or {}
        rules = props.get("SecurityGroupIngress") or []
        if res.get("Type") == "AWS::EC2::SecurityGroupIngress":
            rules = [props]
        for i, rule in enumerate(rules):
            cidr = rule.get("CidrIp") or rule.get("CidrIpv6")
            if isinstance(cidr, dict) and "Ref" in cidr:  # a parameter: its default counts
                cidr = (template.get("Parameters") or {}).get(cidr["Ref"], {}).get("Default")
            if cidr in WORLD:
                problems.append(f"{name}.SecurityGroupIngress[{i}]: open to {cidr}")
    return problems


def launcher_problems(config: dict[str, Any]) -> list[str]:
    """Token auth on every node, dashboard on loopback, our own security groups only."""
    problems = []
    run_options = " ".join(config["docker"].get("run_options", []))
    if "--env RAY_AUTH_MODE=token" not in run_options:
        problems.append("docker.run_options: no --env RAY_AUTH_MODE=token")
    token_path = re.search(r"--env RAY_AUTH_TOKEN_PATH=(\S+)", run_options)
    if not token_path or token_path[1] not in config.get("file_mounts", {}):
        problems.append("the RAY_AUTH_TOKEN_PATH file is not shipped by file_mounts")
    if "RAY_AUTH_TOKEN=" in json.dumps(config):
        problems.append("a literal RAY_AUTH_TOKEN")
    for cmd in config.get("head_start_ray_commands", []):
        host = re.search(r"--dashboard-host[= ](\S+)", cmd)
        if "ray start" in cmd and (not host or host[1] not in ("127.0.0.1", "localhost")):
            problems.append(f"head dashboard not on loopback: {cmd.strip()[:80]}")
    for name, node_type in config["available_node_types"].items():
        if not node_type["node_config"].get("SecurityGroupIds"):
            problems.append(f"{name}: no SecurityGroupIds (the launcher's default opens SSH)")
    extra = (config["provider"].get("security_group") or {}).get("IpPermissions", [])
    problems += [
        f"provider.security_group: {p}"
        for p in security_group_problems(
            {"Resources": {"launcher": {"Properties": {"SecurityGroupIngress": extra}}}}
        )
    ]
    return problems


def statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for st in policy["Statement"]:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        out.append({**st, "Action": actions, "Resource": resources})
    return out


def broad_policy_problems(policy: dict[str, Any], name: str) -> list[str]:
    """No wildcard services or actions, no S3 action on every resource, Allow only."""
    problems = []
    for st in statements(policy):
        sid = f"{name}:{st.get('Sid', '?')}"
        if st["Effect"] != "Allow":
            continue
        for action in st["Action"]:
            if action == "*" or action.endswith(":*"):
                problems.append(f"{sid}: wildcard action {action}")
            if action.startswith("s3:") and "*" in st["Resource"]:
                problems.append(f"{sid}: {action} on every resource")
    return problems


OBJECT_WRITES = {"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl"}


def node_policy_problems(policy: dict[str, Any]) -> list[str]:
    """Training nodes: read raw/, read/write datasets/ checkpoints/ tune/, nothing else."""
    problems = broad_policy_problems(policy, "node")
    writable = {f"{BUCKET}/{p}/*" for p in ("datasets", "checkpoints", "tune")}
    readable = writable | {f"{BUCKET}/raw/*"}
    for st in statements(policy):
        sid = st.get("Sid", "?")
        for res in st["Resource"]:
            if res == BUCKET:
                continue
            if res not in readable:
                problems.append(f"node:{sid}: resource {res} is not one of the node's prefixes")
            elif res not in writable and OBJECT_WRITES & set(st["Action"]):
                problems.append(f"node:{sid}: may write or delete {res}")
        if "s3:ListBucket" in st["Action"]:
            cond = json.dumps(st.get("Condition", {}))
            if "mlflow" in cond or "s3:prefix" not in cond:
                problems.append(f"node:{sid}: ListBucket not limited to the node's prefixes")
    return problems


def mlflow_policy_problems(policy: dict[str, Any]) -> list[str]:
    """MLflow: its artifact prefix only (list included)."""
    problems = broad_policy_problems(policy, "mlflow")
    for st in statements(policy):
        sid = st.get("Sid", "?")
        for res in st["Resource"]:
            if res != BUCKET and res != f"{BUCKET}/mlflow/*":
                problems.append(f"mlflow:{sid}: resource {res} outside mlflow/")
        if "s3:ListBucket" in st["Action"]:
            prefixes = st.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
            if prefixes != ["mlflow/*"]:
                problems.append(f"mlflow:{sid}: ListBucket not limited to mlflow/*")
    return problems


def head_policy_problems(policy: dict[str, Any]) -> list[str]:
    """The autoscaler: pass only the node role, stop only this cluster's tagged instances."""
    problems = broad_policy_problems(policy, "head")
    for st in statements(policy):
        sid = st.get("Sid", "?")
        if "iam:PassRole" in st["Action"] and st["Resource"] != [
            "arn:aws:iam::ACCOUNT_ID:role/raysf-node"
        ]:
            problems.append(f"head:{sid}: PassRole beyond the raysf-node role")
        if "ec2:TerminateInstances" in st["Action"]:
            tag = st.get("Condition", {}).get("StringEquals", {})
            if tag.get("ec2:ResourceTag/ray-cluster-name") != "raysf":
                problems.append(f"head:{sid}: may terminate instances of other clusters")
        if any(a.startswith("s3:") for a in st["Action"]):
            problems.append(f"head:{sid}: S3 rights belong to the node policy")
    return problems


# --------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return k8s_docs()


@pytest.fixture(scope="module")
def launcher() -> dict[str, Any]:
    return yaml.safe_load(CLUSTER_YAML.read_text())


@pytest.fixture(scope="module")
def policies() -> dict[str, dict[str, Any]]:
    return {name: json.loads(path.read_text()) for name, path in POLICIES.items()}


def test_every_kubernetes_ray_cluster_has_token_auth(docs):
    specs = ray_cluster_specs(docs)
    assert set(specs) == {"raysf", "raysf-train"}
    assert [p for name, spec in specs.items() for p in ray_auth_problems(name, spec)] == []
    (job,) = of_kind(docs, "RayJob")
    (submitter,) = job["spec"]["submitterPodTemplate"]["spec"]["containers"]
    env = {e["name"]: e for e in submitter["env"]}
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "raysf-ray-auth"


def test_kubernetes_ingress_is_limited_to_the_clusters_own_pods(docs):
    assert network_policy_problems(docs) == []
    assert service_problems(docs) == []
    ray = {p["metadata"]["name"]: p for p in of_kind(docs, "NetworkPolicy")}["ray-raysf"]
    own, outside = ray["spec"]["ingress"]
    assert own["from"] == [{"podSelector": {"matchLabels": {"raysf.io/cluster": "raysf"}}}]
    assert outside["ports"] == [{"protocol": "TCP", "port": 8265}]  # dashboard/job API only


def test_the_aws_launcher_has_auth_loopback_dashboard_and_no_open_ssh(launcher):
    assert launcher_problems(launcher) == []
    template = yaml.safe_load(SECURITY_GROUPS.read_text())
    assert security_group_problems(template) == []
    pattern = re.compile(template["Parameters"]["AdminCidr"]["AllowedPattern"])
    assert pattern.match("10.20.0.0/24") and pattern.match("203.0.113.7/32")
    for wide in ("0.0.0.0/0", "0.0.0.0/16", "10.0.0.0/8", "::/0"):
        assert not pattern.match(wide), wide


def test_mlflow_servers_require_a_login_and_listen_privately(docs):
    (deploy,) = of_kind(docs, "Deployment")
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    assert "--app-name=basic-auth" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    for var in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert env[var]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-auth"
    assert "AWS_SECRET_ACCESS_KEY" not in env
    unit = (INFRA / "mlflow" / "mlflow.service").read_text()
    exec_start = " ".join(unit.split("ExecStart=", 1)[1].split("\\\n")).split("\n", 1)[0]
    argv = shlex.split(exec_start)
    assert "--app-name" in argv and argv[argv.index("--app-name") + 1] == "basic-auth"
    assert argv[argv.index("--host") + 1] == "${MLFLOW_HOST}"  # the private address
    assert "mlflow[auth]==" in (INFRA / "mlflow" / "Dockerfile").read_text()


def test_no_pod_gets_an_aws_key_through_its_environment(docs):
    text = json.dumps(docs) + CLUSTER_YAML.read_text()
    assert "AWS_SECRET_ACCESS_KEY" not in text and "AWS_ACCESS_KEY_ID" not in text
    assert of_kind(docs, "Secret") == []  # Secrets are created with kubectl, never committed


def test_iam_policies_are_least_privilege(policies):
    assert node_policy_problems(policies["node"]) == []
    assert mlflow_policy_problems(policies["mlflow"]) == []
    assert head_policy_problems(policies["head"]) == []


def test_irsa_roles_are_separate_for_ray_and_mlflow(docs):
    roles = {
        d["metadata"]["name"]: d["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        for d in of_kind(docs, "ServiceAccount")
    }
    assert roles["raysf-ray"].endswith("/raysf-ray-s3")
    assert roles["raysf-mlflow"].endswith("/raysf-mlflow-s3")


# --------------------------------------------------------------------------- negative tests


def test_checkers_catch_a_cluster_without_auth(docs):
    spec = copy.deepcopy(ray_cluster_specs(docs)["raysf"])
    del spec["authOptions"]
    assert ray_auth_problems("neg", spec) == [
        "neg: authOptions.mode must be 'token'",
        "neg: authOptions.secretName must name the token's Secret",
    ]


def test_checkers_catch_open_network_policies_and_services(docs):
    broken = copy.deepcopy(docs)
    for doc in broken:
        if doc.get("kind") == "NetworkPolicy" and doc["metadata"]["name"] == "mlflow":
            doc["spec"]["ingress"] = [{}, {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]
        if doc.get("kind") == "NetworkPolicy" and doc["metadata"]["name"] == "ray-raysf":
            doc["spec"]["podSelector"] = {"matchLabels": {"raysf.io/cluster": "other"}}
        if doc.get("kind") == "Service" and doc["metadata"]["name"] == "mlflow":
            doc["spec"]["type"] = "LoadBalancer"
    problems = network_policy_problems(broken) + service_problems(broken)
    assert "mlflow.ingress[0]: no `from`: admits every source" in problems
    assert "mlflow.ingress[1]: ipBlock 0.0.0.0/0" in problems
    assert any(p.startswith("raysf/head: no NetworkPolicy selects") for p in problems)
    assert "mlflow: Service of type LoadBalancer" in problems


def test_checkers_catch_an_open_launcher(launcher):
    broken = copy.deepcopy(launcher)
    broken["docker"]["run_options"] = ["--env RAY_AUTH_TOKEN=abc"]
    broken["head_start_ray_commands"] = ["ray start --head --dashboard-host=0.0.0.0"]
    del broken["available_node_types"]["decode"]["node_config"]["SecurityGroupIds"]
    broken["provider"]["security_group"] = {
        "IpPermissions": [{"FromPort": 8265, "ToPort": 8265, "CidrIp": "0.0.0.0/0"}]
    }
    problems = launcher_problems(broken)
    assert len(problems) == 6, problems


def test_checkers_catch_broad_iam(policies):
    node = copy.deepcopy(policies["node"])
    node["Statement"][1]["Action"].append("s3:DeleteObject")  # on raw/*
    node["Statement"][2]["Resource"].append(f"{BUCKET}/mlflow/*")
    node["Statement"].append({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    problems = node_policy_problems(node)
    assert any("may write or delete arn:aws:s3:::raysf-data/raw/*" in p for p in problems)
    assert any("mlflow/* is not one of the node's prefixes" in p for p in problems)
    assert any("wildcard action s3:*" in p for p in problems)
    mlflow = copy.deepcopy(policies["mlflow"])
    mlflow["Statement"][1]["Resource"] = [f"{BUCKET}/*"]
    assert mlflow_policy_problems(mlflow) == [
        "mlflow:ReadWriteArtifacts: resource arn:aws:s3:::raysf-data/* outside mlflow/"
    ]
    head = copy.deepcopy(policies["head"])
    head["Statement"][-1]["Resource"] = "*"
    assert head_policy_problems(head) == [
        "head:PassOnlyTheNodeRole: PassRole beyond the raysf-node role"
    ]


def test_checker_catches_world_open_security_groups():
    template = yaml.safe_load(SECURITY_GROUPS.read_text())
    template["Parameters"]["AdminCidr"]["Default"] = "0.0.0.0/0"
    rules = template["Resources"]["MlflowSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    rules.append({"IpProtocol": "tcp", "FromPort": 5000, "ToPort": 5000, "CidrIpv6": "::/0"})
    assert security_group_problems(template) == [
        "RayNodesSecurityGroup.SecurityGroupIngress[0]: open to 0.0.0.0/0",
        "MlflowSecurityGroup.SecurityGroupIngress[1]: open to 0.0.0.0/0",
        "MlflowSecurityGroup.SecurityGroupIngress[2]: open to ::/0",
    ]

"""Files that hold a secret (tokens, keys, passwords) of the local services, readable by their
owner only.

Every such file is created with mode 0600 (never world-readable for a moment: the mode is given
to ``open`` itself, and an existing file is narrowed before it is rewritten), in a folder of mode
0700. The AWS credentials file is how the local Ray nodes get S3 keys: only its path travels
(``AWS_SHARED_CREDENTIALS_FILE``), as on a real cluster whose nodes mount it from a Secret
(docs/cluster.md, "Threat model").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
#: Variables of the caller's environment that name credentials; a local Ray node never
#: inherits them (its S3 keys come from the credentials file, its MLflow login from ``env=``).
CREDENTIAL_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) if missing and make it 0700; returns it."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(PRIVATE_DIR_MODE)
    return folder


def write_private(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` with mode 0600 (an existing file is narrowed first)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), PRIVATE_FILE_MODE)
        handle.write(text)
    return target


def write_aws_credentials(
    path: str | os.PathLike[str], access_key_id: str, secret_access_key: str
) -> Path:
    """An AWS shared-credentials file (profile ``default``), mode 0600."""
    return write_private(
        path,
        "[default]\n"
        f"aws_access_key_id = {access_key_id}\n"
        f"aws_secret_access_key = {secret_access_key}\n",
    )


def without_credentials(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` less :data:`CREDENTIAL_VARS`."""
    return {k: v for k, v in env.items() if k not in CREDENTIAL_VARS}

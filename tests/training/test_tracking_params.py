"""training.tracking.log_params against a real (SQLite) MLflow store."""

from __future__ import annotations

from training import tracking


def test_a_param_logged_again_with_another_value_is_kept_as_a_tag(tmp_path):
    """MLflow keeps a param's first value; a resume with changed settings records the new one."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = tracking.get_client(uri)
    run_id = client.create_run(client.create_experiment("resume")).info.run_id
    tracking.log_params(uri, run_id, {"optim.base_lr": 0.1, "train.epochs": 2})
    tracking.log_params(uri, run_id, {"optim.base_lr": 0.2, "train.epochs": 2, "new": "x"})
    data = client.get_run(run_id).data
    assert data.params == {"optim.base_lr": "0.1", "train.epochs": "2", "new": "x"}
    changed = {k: v for k, v in data.tags.items() if k.startswith("param_changed.")}
    assert changed == {"param_changed.optim.base_lr": "0.1 -> 0.2"}

"""Real local services (Ray nodes, MLflow server, moto S3, fault proxy) bound to 127.0.0.1."""

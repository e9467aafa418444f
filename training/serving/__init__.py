"""``raysf serve``: the trained network behind HTTP on Ray Serve (docs/serving.md).

- :mod:`~training.serving.app` — the Ray Serve application: ingress, decoder and model
  deployments, their routes, starting and stopping the service;
- :mod:`~training.serving.gateway` — one request from its body to its JSON answer, against the
  back ends' handles (admission, body cap, URIs, batching pieces, errors as JSON);
- :mod:`~training.serving.replicas` — the decoder's and the model's work as plain classes;
- :mod:`~training.serving.auth` — the bearer token the ingress requires (found, checked);
- :mod:`~training.serving.admission` — limits and refusals decided before any decoding
  (sizes, the ingest's container allowlist and caps, URI roots, in-flight requests).

Layers, top to bottom (checked by make lint): app > gateway > replicas | auth > admission
"""

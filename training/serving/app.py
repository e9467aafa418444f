"""The Ray Serve application of ``raysf serve``: three deployments and their HTTP routes.

::

    HTTP ──▶ ingress (FastAPI, 0 CPU) ──▶ decoder (CPU replicas) ──▶ uint8 views
               │   admission, body cap,                                 │
               │   URI allowlist            model (CPU or GPU replicas) ◀┘ @serve.batch over clips
               ◀──────────── JSON ◀──────── softmax scores per view

- ``POST /v1/classify``: a video (raw body, multipart ``video`` field, or JSON ``{"uri": ...}``)
  → its top-5 from the ``predict`` test views, the clip spec, the input's probe, timings;
- ``POST /v1/timeline?stride_s=&smooth=&top_k=``: the same inputs → the answer of
  :mod:`training.inference.timeline` (``raysf predict --timeline`` gives the same);
- ``GET /v1/model``: classes, clip spec, checkpoint, the model replica's resolved device
  settings, the service's limits and sizes; ``GET /healthz``.

With a token (:mod:`training.serving.auth`) every ``/v1/*`` route answers 401 ``unauthorized``
without ``Authorization: Bearer TOKEN``, before the body is read; ``/healthz`` stays open.

The decoder and the model are separate deployments so each scales on its own resource; the
model batches views of several requests (``max_batch_clips``, ``batch_wait_s``); with
``max_replicas`` above ``replicas`` both back ends autoscale on their ongoing requests.
Ray Serve and FastAPI are imported only here, inside the functions that build the service (the
rest of the project, and ``raysf`` commands other than ``serve``, run without them).
"""

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Any

from raysf.clip_spec import ClipSpec
from training.inference.predict import ModelSource, load_predictor
from training.serving.admission import RequestError, ServeLimits
from training.serving.auth import check_bearer
from training.serving.gateway import Gateway
from training.serving.replicas import ModelReplica, VideoDecoder

APP_NAME = "raysf"
DEVICES = ("cpu", "cuda")
#: Headers of an answer by its status: how to authenticate, when to retry.
ANSWER_HEADERS = {
    401: {"WWW-Authenticate": "Bearer"},
    429: {"Retry-After": "1"},
    503: {"Retry-After": "1"},
}


@dataclass(frozen=True)
class ServeConfig:
    """One service: its model, where it runs, how many replicas, its limits and batching."""

    model: ModelSource
    device: str = "cpu"
    replicas: int = 1
    max_replicas: int | None = None
    decoders: int = 1
    host: str = "127.0.0.1"
    port: int = 8000
    limits: ServeLimits = field(default_factory=ServeLimits)
    max_batch_clips: int = 32
    batch_wait_s: float = 0.01
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.replicas < 1 or self.decoders < 1 or self.max_batch_clips < 1:
            raise ValueError("replicas, decoders and max_batch_clips must be >= 1")
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise ValueError(f"max_replicas {self.max_replicas} < replicas {self.replicas}")
        if not 0 <= self.port <= 65535 or self.batch_wait_s < 0:
            raise ValueError(f"port {self.port} or batch_wait_s {self.batch_wait_s} out of range")

    def describe(self) -> dict[str, Any]:
        """The service's settings as ``GET /v1/model`` reports them."""
        limits = asdict(self.limits)
        return {
            "device": self.device,
            "replicas": self.replicas,
            "max_replicas": self.max_replicas or self.replicas,
            "decoders": self.decoders,
            "max_batch_clips": self.max_batch_clips,
            "batch_wait_s": self.batch_wait_s,
            "auth": "none" if self.token is None else "token",
            "limits": {**limits.pop("ingest"), **limits},
        }


def _refusal(headers, token: str | None) -> tuple[int, dict[str, Any]] | None:
    """The 401 answer of a request without the service's bearer token, else ``None``."""
    try:
        check_bearer(headers.get("authorization"), token)
    except RequestError as exc:
        return exc.status, exc.body()
    return None


def _clip_count(items: list) -> int:
    """``@serve.batch``'s size of a batch: its views, not its requests."""
    return sum(len(x) for x in items)


def _scaling(cfg: ServeConfig, replicas: int) -> dict[str, Any]:
    if cfg.max_replicas is None or cfg.max_replicas == cfg.replicas:
        return {"num_replicas": replicas}
    ratio = cfg.max_replicas / cfg.replicas
    top = max(replicas, round(replicas * ratio))
    autoscaling = {"min_replicas": replicas, "max_replicas": top, "target_ongoing_requests": 2}
    return {"autoscaling_config": autoscaling}


def build_app(cfg: ServeConfig, spec: ClipSpec):
    """The application (ingress bound to the decoder and model deployments)."""
    # heavy optional: Ray Serve is imported only where the service is built
    from ray import serve

    model_resources = {"num_cpus": 1, "num_gpus": 1 if cfg.device == "cuda" else 0}

    @serve.deployment(
        name="model",
        ray_actor_options=model_resources,
        max_ongoing_requests=4 * cfg.max_batch_clips,
        **_scaling(cfg, cfg.replicas),
    )
    class Model(ModelReplica):
        @serve.batch(
            max_batch_size=cfg.max_batch_clips,
            batch_wait_timeout_s=cfg.batch_wait_s,
            batch_size_fn=_clip_count,
        )
        async def score(self, items: list) -> list:
            return await asyncio.to_thread(self.score_batch, items)

    decoder = serve.deployment(
        VideoDecoder,
        name="decoder",
        ray_actor_options={"num_cpus": 1},
        max_ongoing_requests=4,
        **_scaling(cfg, cfg.decoders),
    )
    ingress = _ingress(cfg)
    return ingress.bind(
        decoder.bind(spec, cfg.limits), Model.bind(cfg.model, cfg.device), cfg.describe()
    )


def _ingress(cfg: ServeConfig):
    """The FastAPI ingress deployment (routes in the module docstring)."""
    # heavy optional: only the service imports FastAPI and Ray Serve
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from ray import serve

    api = FastAPI(title="raysf serve")

    @serve.deployment(
        name="ingress",
        ray_actor_options={"num_cpus": 0},
        max_ongoing_requests=2 * cfg.limits.max_inflight + 8,
    )
    @serve.ingress(api)
    class Ingress:
        def __init__(self, decoder, model, service: dict) -> None:
            self.gateway = Gateway(decoder, model, cfg.limits, cfg.max_batch_clips)
            self.service = service

        async def _answer(self, request: Request, route: str) -> JSONResponse:
            status, answer = _refusal(request.headers, cfg.token) or (200, None)
            if answer is None and route == "model":
                answer = {**await self.gateway.model.info.remote(), "service": self.service}
            elif answer is None:
                query = dict(request.query_params)
                status, answer = await self.gateway.answer(
                    route, request.stream(), request.headers, query
                )
            return JSONResponse(answer, status_code=status, headers=ANSWER_HEADERS.get(status))

        @api.post("/v1/classify")
        async def classify(self, request: Request) -> JSONResponse:
            return await self._answer(request, "classify")

        @api.post("/v1/timeline")
        async def timeline(self, request: Request) -> JSONResponse:
            return await self._answer(request, "timeline")

        @api.get("/v1/model")
        async def model(self, request: Request) -> JSONResponse:
            return await self._answer(request, "model")

        @api.get("/healthz")
        async def healthz(self) -> dict:
            return {"status": "ok", "inflight": self.gateway.gate.active}

    return Ingress


def start_service(cfg: ServeConfig, name: str = APP_NAME, route_prefix: str = "/") -> str:
    """Build the model once here (a checkpoint that does not load fails before Ray Serve
    starts), start Ray Serve's HTTP proxy on ``cfg.host:cfg.port`` (once per cluster) and deploy
    the application ``name`` at ``route_prefix``; returns its URL. Ray must be initialised."""
    # heavy optional: Ray Serve is imported only where the service starts
    from ray import serve

    spec = load_predictor(cfg.model, "cpu").spec
    serve.start(http_options={"host": cfg.host, "port": cfg.port}, proxy_location="HeadOnly")
    serve.run(build_app(cfg, spec), name=name, route_prefix=route_prefix)
    return f"http://{cfg.host}:{cfg.port}{route_prefix.rstrip('/')}"


def stop_service() -> None:
    """Delete the application and stop Ray Serve (its controller and proxy)."""
    # heavy optional: Ray Serve is imported only where the service stops
    from ray import serve

    serve.shutdown()

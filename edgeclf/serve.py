"""`edgeclf serve`: the runtime's :class:`~edgeclf.runtime.Predictor` on KServe's ModelServer.

Open Inference Protocol ("v2", REST + gRPC) and KServe v1, torch-free, with micro-batching::

    GET  /v2/health/live | /v2/health/ready | /v2/models/{name} (metadata) | /metrics
    POST /v2/models/{name}/infer
         input "image" BYTES [N] (encoded image files, base64 text; raw bytes where the transport
         keeps them intact), parameter top_k (default 3)
             → "label" BYTES [N, k], "probability" FP32 [N, k], "index" INT64 [N, k]
         input "input" FP32 [N, 3, H, W] (already preprocessed) → "logits" FP32 [N, C]
    POST /v1/models/{name}:predict  {"instances": [{"b64": "..."}, ...]}
             → {"predictions": [[{"label", "index", "probability"}, ...], ...]}

KServe 0.21 is used as it is (``kserve.Model``, its DataPlane, gRPC servicer, health, metadata and
metrics), with small fixes on our side, all in this module:

* REST v2 ``infer`` and model metadata are our routes, registered before KServe's: KServe's
  binary-extension decoder UTF-8-decodes every BYTES element (raw JPEG bytes fail before reaching
  the model), takes a request without ``Inference-Header-Content-Length`` (tritonclient's all-JSON
  requests) for a binary one, and its metadata model has no ``parameters`` for the class names.
  Our parser (:func:`parse_rest_infer_request`) keeps BYTES elements as bytes and answers every
  malformed request with HTTP 400 and a one-line ``{"error": ...}``.
* A request body over the limit (default 50 MiB) is refused with 413 before it is read
  (:class:`BodyLimitMiddleware`), for v1 and v2 alike.
* Host binding: KServe binds ``0.0.0.0`` / ``[::]``; :func:`serve` passes ``--host`` to uvicorn and
  to the gRPC server.
* gRPC outputs are serialized by the model as ``raw_output_contents``: KServe's ``to_grpc`` fails
  on numpy output data, and tritonclient's gRPC parser hits numpy 2's "unable to avoid copy" on
  outputs sent in ``contents``.

Errors a client can cause raise KServe's ``InvalidInput`` (HTTP 400, gRPC INVALID_ARGUMENT) or
``ModelNotFound`` (404, NOT_FOUND), never a 500; their message names the input and element index.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import logging
import struct
import sys
import uuid
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edgeclf.runtime.errors import InvalidImageError, UsageError
from edgeclf.runtime.image import DEFAULT_MAX_PIXELS, load_image
from edgeclf.runtime.inference import softmax, top_k, top_k_predictions
from edgeclf.runtime.predictor import Predictor
from edgeclf.runtime.preprocess import preprocess

from .microbatch import MicroBatcher


def _import_kserve():
    """Import kserve without letting its module-level ``argparse`` read our command line."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        import kserve  # noqa: F401
        import kserve.model_server  # noqa: F401
    finally:
        sys.argv = saved
    return kserve


kserve = _import_kserve()
from fastapi import Request  # noqa: E402  (a kserve dependency; module level so FastAPI sees the annotation)
from kserve.errors import InvalidInput, ModelNotFound  # noqa: E402
from kserve.protocol.infer_type import (  # noqa: E402
    InferInput, InferOutput, InferRequest, InferResponse, RequestedOutput, deserialize_bytes_tensor,
)

logger = logging.getLogger("edgeclf.serve")

DEFAULT_MODEL_NAME = "edgeclf"
DEFAULT_MAX_BODY_BYTES = 50 * 2**20
INFERENCE_HEADER = "inference-header-content-length"
IMAGE_INPUT, TENSOR_INPUT = "image", "input"
OUTPUTS_IMAGE = ("label", "probability", "index")
OUTPUT_LOGITS = "logits"


@dataclass(frozen=True)
class ServeOptions:
    """How one model is served (everything :class:`EdgeclfModel` needs to rebuild itself in a
    worker process).

    Attributes:
        artifact: artifact directory or ``.onnx`` file.
        model_name: the ``{name}`` in the URLs.
        device, precision, intra_op_threads: as for :class:`Predictor`.
        max_batch_size: most images per onnxruntime call when merging concurrent requests
            (1: no micro-batching, each request runs on its own).
        batch_timeout_ms: longest wait (ms) for more requests once one is queued.
        max_body_bytes: larger request bodies get HTTP 413.
        max_pixels: decompression-bomb guard per image (pixels).
    """

    artifact: str
    model_name: str = DEFAULT_MODEL_NAME
    device: str = "auto"
    precision: str = "fp32"
    intra_op_threads: int | None = None
    max_batch_size: int = 32
    batch_timeout_ms: float = 5.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_pixels: int | None = DEFAULT_MAX_PIXELS

    def __post_init__(self):
        if isinstance(self.max_batch_size, bool) or not isinstance(self.max_batch_size, int) or self.max_batch_size < 1:
            raise UsageError(f"max_batch_size={self.max_batch_size!r}: give an integer >= 1")
        if not self.batch_timeout_ms >= 0:
            raise UsageError(f"batch_timeout_ms={self.batch_timeout_ms!r}: give a number of ms >= 0")
        if self.max_body_bytes < 1:
            raise UsageError(f"max_body_bytes={self.max_body_bytes!r}: give a positive byte count")
        if not self.model_name or "/" in self.model_name or ":" in self.model_name:
            raise UsageError(f"model_name={self.model_name!r}: give a non-empty name without '/' or ':'")


# -- request conversion ------------------------------------------------------------------------------
def _check(cond: bool, message: str) -> None:
    if not cond:
        raise InvalidInput(message)


def parse_rest_infer_request(body: bytes, headers, model_name: str) -> InferRequest:
    """An Open Inference Protocol REST request (JSON, optionally followed by binary tensor data)
    → KServe ``InferRequest``, BYTES elements kept as bytes.

    Args:
        body: the HTTP body.
        headers: request headers (``Inference-Header-Content-Length`` = length of the JSON part;
            without it the whole body is JSON).
        model_name: from the URL.
    Raises:
        InvalidInput: malformed JSON or structure; the message names the field.
    """
    import orjson

    length = headers.get(INFERENCE_HEADER)
    if length is None:
        json_len = len(body)
    else:
        _check(length.strip().isdigit() and int(length) <= len(body),
               f"{INFERENCE_HEADER}: {length!r} is not a byte count within the {len(body)}-byte body")
        json_len = int(length)
    try:
        doc = orjson.loads(body[:json_len])
    except orjson.JSONDecodeError as err:
        raise InvalidInput(f"request body is not valid JSON ({err}); send the Open Inference"
                           " Protocol JSON, with binary tensors after it and"
                           f" '{INFERENCE_HEADER}' set") from None
    _check(isinstance(doc, dict), "request body: expected a JSON object with \"inputs\"")
    inputs = doc.get("inputs")
    _check(isinstance(inputs, list) and len(inputs) > 0, "inputs: expected a non-empty list of tensors")
    offset = json_len
    infer_inputs = []
    for i, spec in enumerate(inputs):
        where = f"inputs[{i}]"
        _check(isinstance(spec, dict), f"{where}: expected an object with name, datatype, shape, data")
        name, datatype, shape = spec.get("name"), spec.get("datatype"), spec.get("shape")
        _check(isinstance(name, str), f"{where}.name: expected a string")
        _check(isinstance(datatype, str), f"{where} ({name!r}).datatype: expected a string such as BYTES or FP32")
        _check(isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                               for d in shape),
               f"{where} ({name!r}).shape: expected a list of non-negative integers, got {shape!r}")
        params = spec.get("parameters") or {}
        _check(isinstance(params, dict), f"{where} ({name!r}).parameters: expected an object")
        inp = InferInput(name=name, shape=shape, datatype=datatype, parameters=params)
        if "data" in spec:
            inp.data = spec["data"]
        elif "binary_data_size" in params:
            size = params["binary_data_size"]
            _check(isinstance(size, int) and not isinstance(size, bool) and 0 <= size <= len(body) - offset,
                   f"{where} ({name!r}).parameters.binary_data_size: {size!r} is beyond the"
                   f" {len(body) - offset} binary bytes after the JSON")
            inp._raw_data = body[offset:offset + size]
            offset += size
        else:
            raise InvalidInput(f"{where} ({name!r}): no \"data\" and no parameters.binary_data_size")
        infer_inputs.append(inp)
    outputs = None
    if doc.get("outputs") is not None:
        _check(isinstance(doc["outputs"], list) and all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                       for o in doc["outputs"]),
               "outputs: expected a list of objects with a \"name\"")
        outputs = [RequestedOutput(name=o["name"], parameters=o.get("parameters") or {}) for o in doc["outputs"]]
    parameters = doc.get("parameters")
    _check(parameters is None or isinstance(parameters, dict), "parameters: expected an object")
    request_id = doc.get("id")
    return InferRequest(model_name=model_name, infer_inputs=infer_inputs,
                        request_id=str(request_id) if request_id is not None else None,
                        parameters=parameters, request_outputs=outputs)


def _flatten(data) -> list:
    if isinstance(data, (list, tuple)):
        return [x for item in data for x in _flatten(item)]
    return [data]


def bytes_elements(inp: InferInput, where: str) -> list[bytes]:
    """The elements of a BYTES tensor, whatever carried them (JSON strings, binary extension,
    gRPC ``bytes_contents`` or ``raw_input_contents``), as ``bytes``."""
    if inp._raw_data is not None:
        raw = bytes(inp._raw_data)
        try:
            return list(deserialize_bytes_tensor(raw))
        except struct.error:
            raise InvalidInput(f"{where}: binary BYTES data is not a sequence of 4-byte little-endian"
                               " lengths each followed by that many bytes") from None
    out = []
    for j, el in enumerate(_flatten(inp.data if inp.data is not None else [])):
        if isinstance(el, str):
            out.append(el.encode("utf-8"))
        elif isinstance(el, (bytes, bytearray)):
            out.append(bytes(el))
        elif isinstance(el, dict) and isinstance(el.get("b64"), str):
            out.append(el["b64"].encode("ascii", "replace"))
        else:
            raise InvalidInput(f"{where} element {j}: expected a base64 string, got {type(el).__name__}")
    return out


_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=")


def image_bytes(element: bytes) -> bytes:
    """An element of the ``image`` input → encoded image bytes: base64 text (standard or URL-safe,
    padded or not) is decoded — the form that travels in JSON —, anything else (raw bytes of the
    binary extension or gRPC; image files never are pure base64 text) is kept as it is."""
    text = element.strip()
    try:
        # line-wrapped base64 (MIME, `base64` without -w0): line breaks only; a space means text
        ascii_text = text.decode("ascii").replace("\r", "").replace("\n", "")
    except UnicodeDecodeError:
        return element
    if not ascii_text or not set(ascii_text) <= _B64_CHARS:
        return element
    try:
        return base64.urlsafe_b64decode(ascii_text.rstrip("=").replace("+", "-").replace("/", "_")
                                        + "=" * (-len(ascii_text.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        return element


def _parameter(parameters, key: str, default):
    """A request parameter from REST (dict) or gRPC (map of InferParameter)."""
    if not parameters or key not in parameters:
        return default
    value = parameters[key]
    if hasattr(value, "WhichOneof"):
        kind = value.WhichOneof("parameter_choice")
        return getattr(value, kind) if kind else default
    return value


_HISTOGRAM = []


def _batch_histogram():
    """Prometheus histogram ``edgeclf_microbatch_images``: images per merged onnxruntime call."""
    if not _HISTOGRAM:
        from prometheus_client import Histogram

        _HISTOGRAM.append(Histogram("edgeclf_microbatch_images", "Images per merged onnxruntime call",
                                    ["model_name"], buckets=(1, 2, 4, 8, 16, 32, 64, 128)))
    return _HISTOGRAM[0]


# -- the model ---------------------------------------------------------------------------------------
#: name → model in this process, for our REST routes (KServe's registry is not reachable from them).
_MODELS: dict[str, "EdgeclfModel"] = {}


class EdgeclfModel(kserve.Model):
    """A ``kserve.Model`` over the runtime's :class:`Predictor` (see the module docstring for the
    protocol surface). Picklable: KServe's ``--workers N`` starts spawned processes that get a copy,
    which loads its own Predictor.

    Args:
        options: :class:`ServeOptions`.
    Raises:
        ArtifactError, ProviderError, UsageError: from :class:`Predictor` (at :meth:`load`).
    """

    def __init__(self, options: ServeOptions):
        super().__init__(options.model_name)
        self.options = options
        self.predictor: Predictor | None = None
        self.batcher: MicroBatcher | None = None

    # lifecycle
    def load(self) -> bool:
        o = self.options
        self.predictor = Predictor(o.artifact, device=o.device, precision=o.precision,
                                   intra_op_threads=o.intra_op_threads, max_pixels=o.max_pixels)
        self.batcher = (MicroBatcher(self.predictor.logits, o.max_batch_size, o.batch_timeout_ms,
                                     on_batch=_batch_histogram().labels(model_name=self.name).observe)
                        if o.max_batch_size > 1 else None)
        _MODELS[self.name] = self
        self.ready = True
        return True

    def __getstate__(self):
        state = dict(self.__dict__)
        state["predictor"] = state["batcher"] = None
        state["_http_client_instance"] = state["_grpc_client_stub"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if state.get("ready"):  # a spawned worker: its own session and our routes on its app
            self.load()
            install_routes(self.options.max_body_bytes)
            _quiet_request_timings()

    def stop(self):
        if self.batcher is not None:
            self.batcher.close()
        super().stop()

    # metadata
    def get_input_types(self) -> list[dict]:
        crop = self.predictor.preprocess_config.crop_size
        return [{"name": IMAGE_INPUT, "datatype": "BYTES", "shape": [-1]},
                {"name": TENSOR_INPUT, "datatype": "FP32", "shape": [-1, 3, crop, crop]}]

    def get_output_types(self) -> list[dict]:
        c = len(self.predictor.class_names)
        return [{"name": "label", "datatype": "BYTES", "shape": [-1, -1]},
                {"name": "probability", "datatype": "FP32", "shape": [-1, -1]},
                {"name": "index", "datatype": "INT64", "shape": [-1, -1]},
                {"name": OUTPUT_LOGITS, "datatype": "FP32", "shape": [-1, c]}]

    def metadata(self) -> dict:
        """Open Inference Protocol model metadata, plus ``parameters`` with the class names and the
        preprocessing (what a client needs to send ``input`` tensors itself)."""
        p = self.predictor
        return {
            "name": self.name, "versions": ["1"], "platform": "onnxruntime_onnx",
            "inputs": self.get_input_types(), "outputs": self.get_output_types(),
            "parameters": {
                "class_names": list(p.class_names), "preprocess": p.preprocess_config.to_dict(),
                "arch": p.info.arch, "providers": p.providers, "precision": self.options.precision,
                "max_batch_size": self.options.max_batch_size, "default_top_k": 3,
            },
        }

    # inference
    async def _logits(self, x: np.ndarray, reserved: bool = False) -> np.ndarray:
        if self.batcher is not None:
            return await asyncio.wrap_future(self.batcher.submit(x, reserved=reserved))
        return await asyncio.get_running_loop().run_in_executor(None, self.predictor.logits, x)

    async def _decode_and_run(self, elements: Sequence[bytes], where: str) -> np.ndarray:
        """Logits (N, C) of N encoded images, ``--max-batch-size`` at a time: memory is bounded by
        one chunk of decoded images whatever N a request holds."""
        step = max(1, self.options.max_batch_size)
        parts = [await self._decode_and_run_chunk(elements[i:i + step], where, offset=i)
                 for i in range(0, len(elements), step)]
        return np.concatenate(parts)

    async def _decode_and_run_chunk(self, elements: Sequence[bytes], where: str, offset: int) -> np.ndarray:
        """Decode in a worker thread (announced to the micro-batcher meanwhile), then the model."""
        if self.batcher is not None:
            self.batcher.reserve()
        try:
            x = await asyncio.get_running_loop().run_in_executor(None, self._decode, elements, where, offset)
        except BaseException:
            if self.batcher is not None:
                self.batcher.release()
            raise
        return await self._logits(x, reserved=True)

    def _decode(self, elements: Sequence[bytes], where: str, offset: int = 0) -> np.ndarray:
        """Encoded images → (N, 3, H, W) float32; the first undecodable one raises InvalidInput
        (named by its index in the request: ``offset`` + its index here)."""
        cfg = self.predictor.preprocess_config
        arrays = []
        for j, element in enumerate(elements, start=offset):
            data = image_bytes(element)
            try:
                img = load_image(data, max_pixels=self.options.max_pixels, name=f"{where} element {j}")
            except InvalidImageError as err:
                raise InvalidInput(f"{err.source}: {err.reason}") from None
            arrays.append(preprocess(img, cfg))
        return np.stack(arrays)

    def _top_k(self, parameters) -> int:
        k = _parameter(parameters, "top_k", 3)
        c = len(self.predictor.class_names)
        if isinstance(k, str) and k.strip().isdigit():
            k = int(k)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= c:
            raise InvalidInput(f"parameters.top_k: {k!r} is out of range; give an integer from 1 to {c}")
        return k

    async def predict(self, payload, headers=None, response_headers=None):
        if isinstance(payload, InferRequest):
            return await self._predict_v2(payload)
        return await self._predict_v1(payload)

    async def _predict_v2(self, request: InferRequest) -> InferResponse:
        names = [i.name for i in request.inputs]
        if len(request.inputs) != 1 or names[0] not in (IMAGE_INPUT, TENSOR_INPUT):
            raise InvalidInput(f"inputs: expected one input, {IMAGE_INPUT!r} (BYTES [N]) or"
                               f" {TENSOR_INPUT!r} (FP32 [N, 3, H, W]); got {names}")
        inp = request.inputs[0]
        where = f"inputs[0] ({inp.name!r})"
        allowed = OUTPUTS_IMAGE if inp.name == IMAGE_INPUT else (OUTPUT_LOGITS,)
        requested = request.request_outputs
        unknown = [o.name for o in requested or () if o.name not in allowed]
        _check(not unknown, f"outputs: {unknown} not produced for input {inp.name!r}; ask for {list(allowed)}")
        if inp.name == IMAGE_INPUT:
            k = self._top_k(request.parameters)
            _check(inp.datatype == "BYTES", f"{where}: datatype {inp.datatype} must be BYTES (encoded image files)")
            _check(len(inp.shape) == 1 and inp.shape[0] >= 1,
                   f"{where}: shape {list(inp.shape)} must be [N] with N >= 1 images")
            elements = bytes_elements(inp, where)
            _check(len(elements) == inp.shape[0],
                   f"{where}: shape says {inp.shape[0]} elements, the data has {len(elements)}")
            probs = softmax(await self._decode_and_run(elements, where))
            order = top_k(probs, k)  # (N, k), ties → lower class index, as the in-process Predictor
            names_arr = np.array(self.predictor.class_names, dtype=object)
            values = {
                "label": np.array([[n.encode("utf-8") for n in row] for row in names_arr[order]], dtype=object),
                "probability": np.take_along_axis(probs, order, axis=1).astype(np.float32),
                "index": order.astype(np.int64),
            }
        else:
            crop = self.predictor.preprocess_config.crop_size
            _check(inp.datatype == "FP32", f"{where}: datatype {inp.datatype} must be FP32")
            _check(len(inp.shape) == 4 and inp.shape[0] >= 1 and list(inp.shape[1:]) == [3, crop, crop],
                   f"{where}: shape {list(inp.shape)} must be [N, 3, {crop}, {crop}]")
            try:
                x = np.array(inp.as_numpy(), dtype=np.float32)  # a writable copy (raw gRPC data is read-only)
            except (ValueError, TypeError) as err:
                raise InvalidInput(f"{where}: data does not fill shape {list(inp.shape)} with numbers"
                                   f" ({str(err).splitlines()[0]})") from None
            step = max(1, self.options.max_batch_size)  # one model call per --max-batch-size rows
            values = {OUTPUT_LOGITS: np.concatenate([await self._logits(x[i:i + step])
                                                     for i in range(0, len(x), step)])}
        dtypes = {"label": "BYTES", "probability": "FP32", "index": "INT64", OUTPUT_LOGITS: "FP32"}
        outputs = [InferOutput(name=n, shape=list(v.shape), datatype=dtypes[n], data=v) for n, v in values.items()]
        if request.from_grpc:  # KServe's to_grpc cannot take numpy data (truth value of an array): serialize here
            for out, v in zip(outputs, values.values()):
                out.set_data_from_numpy(v, binary_data=True)
        return InferResponse(response_id=request.id or str(uuid.uuid4()), model_name=self.name,
                             model_version=None, infer_outputs=outputs, from_grpc=request.from_grpc,
                             use_binary_outputs=request.use_binary_outputs,
                             requested_outputs=requested or None)

    async def _predict_v1(self, payload) -> dict:
        if isinstance(payload, (bytes, bytearray, str)):  # sent without Content-Type: application/json
            import orjson

            try:
                payload = orjson.loads(payload)
            except orjson.JSONDecodeError as err:
                raise InvalidInput(f"request body is not valid JSON ({err}); send"
                                   " {\"instances\": [{\"b64\": \"<base64 image>\"}, ...]}") from None
        _check(isinstance(payload, dict) and isinstance(payload.get("instances"), list) and payload["instances"],
               "instances: expected {\"instances\": [{\"b64\": \"<base64 image>\"}, ...]}")
        k = self._top_k(payload.get("parameters") or {"top_k": payload.get("top_k", 3)})
        elements = []
        for j, inst in enumerate(payload["instances"]):
            value = inst.get("b64") if isinstance(inst, dict) else inst
            _check(isinstance(value, str), f"instances[{j}]: expected {{\"b64\": \"<base64 image>\"}}")
            try:
                elements.append(base64.b64decode(value.strip(), validate=True))
            except (binascii.Error, ValueError):
                raise InvalidInput(f"instances[{j}].b64: not base64 text") from None
        probs = softmax(await self._decode_and_run(elements, "instances"))
        names = self.predictor.class_names
        preds = []
        for row in probs:
            preds.append([p.to_dict() for p in top_k_predictions(row, k, names)])
        return {"predictions": preds}


# -- REST routes and body limit ---------------------------------------------------------------------
class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """ASGI middleware: HTTP 413 with a one-line JSON error for a body over ``max_bytes`` (by its
    ``Content-Length`` before reading, or while streaming a chunked one)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def _refuse(self, send, size: str) -> None:
        import orjson

        body = orjson.dumps({"error": f"request body of {size} exceeds the limit of {self.max_bytes:,}"
                                      " bytes; send fewer images per request (or raise --max-body-mib)"})
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for key, value in scope.get("headers", []):
            if key == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                return await self._refuse(send, f"{int(value):,} bytes")
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(send, f"more than {self.max_bytes:,} bytes")


def _get_model(model_name: str) -> EdgeclfModel:
    model = _MODELS.get(model_name)
    if model is None or not model.ready:
        raise ModelNotFound(model_name)
    return model


async def _infer_route(request: Request, model_name: str):
    import orjson
    from fastapi.responses import Response

    model = _get_model(model_name)
    body = await request.body()
    infer_request = parse_rest_infer_request(body, request.headers, model_name)
    response, _ = await model(infer_request, headers=dict(request.headers))
    result, json_len = response.to_rest()
    if isinstance(result, bytes):
        return Response(content=result, media_type="application/octet-stream",
                        headers={INFERENCE_HEADER: str(json_len)})
    return Response(content=orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


async def _versioned_infer_route(request: Request, model_name: str, model_version: str):
    return await _infer_route(request, model_name)


async def _metadata_route(model_name: str):
    import orjson
    from fastapi.responses import Response

    return Response(content=orjson.dumps(_get_model(model_name).metadata()), media_type="application/json")


def install_routes(max_body_bytes: int) -> None:
    """Put our REST v2 ``infer``/metadata routes (ahead of KServe's) and the body limit on KServe's
    FastAPI app in this process. Idempotent."""
    from kserve.model_server import app

    if getattr(app.state, "edgeclf_routes", False):
        return
    app.state.edgeclf_routes = True
    app.add_api_route("/v2/models/{model_name}/infer", _infer_route, methods=["POST"], include_in_schema=False)
    app.add_api_route("/v2/models/{model_name}/versions/{model_version}/infer", _versioned_infer_route,
                      methods=["POST"], include_in_schema=False)
    app.add_api_route("/v2/models/{model_name}", _metadata_route, methods=["GET"], include_in_schema=False)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    # A client's mistake is logged as one line; KServe's handlers log each with a full traceback,
    # so a client sending bad input could flood the log. KServe installs its handlers when its REST
    # server starts (RESTServer._add_exception_handlers), so they are replaced where it looks them up.
    import kserve.protocol.rest.server as kserve_rest

    kserve_rest.invalid_input_handler = _client_error
    kserve_rest.model_not_found_handler = _client_error


async def _client_error(_request, exc):
    """400 (``InvalidInput``) or 404 (``ModelNotFound``) with ``{"error": message}``, logged once."""
    from fastapi.responses import JSONResponse

    status = 404 if isinstance(exc, ModelNotFound) else 400
    message = _bounded(str(exc) or type(exc).__name__)
    logger.info("%d %s", status, message)
    return JSONResponse(status_code=status, content={"error": message})


#: Longest error message a client gets back (and the log line): a message quoting what the client
#: sent (a shape, an input name) must not echo megabytes of it.
MAX_ERROR_CHARS = 500


def _bounded(message: str, limit: int = MAX_ERROR_CHARS) -> str:
    """The first line of ``message``, cut to ``limit`` characters with its size said."""
    line = message.splitlines()[0] if message else ""
    return line if len(line) <= limit else f"{line[:limit]}… ({len(line):,} characters)"


def _quiet_request_timings() -> None:
    """KServe logs two timing lines per request at INFO (``kserve.trace``); the access log and
    ``/metrics`` already carry that, and under load the lines cost CPU."""
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    # KServe 0.21's app answers with ORJSONResponse, which newer FastAPI deprecates (works alike).
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")


# -- the server --------------------------------------------------------------------------------------
def _grpc_server_class():
    from grpc import aio
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
    from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor, LoggingInterceptor
    from kserve.protocol.grpc.server import GRPCServer
    from kserve.protocol.grpc.servicer import InferenceServicer

    from grpc import StatusCode

    class ClientErrorsAsOneLine(ExceptionToStatusInterceptor):
        """KServe's exception-to-status mapping, with a client's mistake (INVALID_ARGUMENT,
        NOT_FOUND) logged as one line instead of a traceback."""

        async def handle_exception(self, ex, request_or_iterator, context, method_name):
            if isinstance(ex, (InvalidInput, ModelNotFound)):
                status = StatusCode.NOT_FOUND if isinstance(ex, ModelNotFound) else StatusCode.INVALID_ARGUMENT
                reason = _bounded(str(ex.reason))
                logger.info("%s %s: %s", status.name, method_name, reason)
                await context.abort(status, reason)
            await super().handle_exception(ex, request_or_iterator, context, method_name)

    class HostGRPCServer(GRPCServer):
        """KServe's gRPC server, listening on ``host`` instead of every interface."""

        host = "0.0.0.0"

        async def start(self, max_workers):
            servicer = InferenceServicer(self._data_plane, self._model_repository_extension)
            limit = self._kwargs.get("max_message_bytes")
            self._server = aio.server(
                concurrent.futures.ThreadPoolExecutor(max_workers=max_workers),
                interceptors=(LoggingInterceptor(), ClientErrorsAsOneLine()),
                options=[("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)],
            )
            grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
            self._server.add_insecure_port(f"{self.host}:{self._port}")
            await self._server.start()
            await self._server.wait_for_termination()

    return HostGRPCServer


def serve(options: ServeOptions, host: str = "0.0.0.0", http_port: int = 8080, grpc_port: int = 8081,
          workers: int = 1, enable_grpc: bool = True, grace_period_s: int = 30) -> None:
    """Load the model and run KServe's ModelServer until SIGTERM/SIGINT (in-flight requests finish,
    within ``grace_period_s``).

    Args:
        options: the model and batching settings.
        host: interface to listen on (``127.0.0.1`` for this machine only).
        http_port, grpc_port: ports (gRPC off with ``enable_grpc=False``).
        workers: REST worker processes (KServe spawns them; each loads its own session).
    Raises:
        ArtifactError, ProviderError, UsageError: the model cannot be served.
    """
    from kserve import ModelServer
    from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
    from kserve.protocol.rest.multiprocess.server import RESTServerMultiProcess
    from kserve.protocol.rest.server import RESTServer

    if workers < 1:
        raise UsageError(f"workers={workers}: give an integer >= 1")
    model = EdgeclfModel(options)
    model.load()
    install_routes(options.max_body_bytes)
    server = ModelServer(http_port=http_port, grpc_port=grpc_port, workers=workers,
                         enable_grpc=enable_grpc, grace_period=grace_period_s,
                         enable_latency_logging=False)
    server.register_model(model)
    _quiet_request_timings()
    common = dict(access_log_format=None, workers=workers, grace_period=grace_period_s)
    if workers > 1:
        server._rest_multiprocess_server = RESTServerMultiProcess(
            FASTAPI_APP_IMPORT_STRING, server.dataplane, server.model_repository_extension, http_port, **common)
        server._rest_multiprocess_server._rest_server.config.host = host
        server.servers.append(server._rest_multiprocess_server.start())
    else:
        server._rest_server = RESTServer(FASTAPI_APP_IMPORT_STRING, server.dataplane,
                                         server.model_repository_extension, http_port, **common)
        server._rest_server.config.host = host
        server.servers.append(server._rest_server.start())
    if enable_grpc:
        cls = _grpc_server_class()
        cls.host = host if ":" not in host else f"[{host}]"
        server._grpc_server = cls(grpc_port, server.dataplane, server.model_repository_extension,
                                  kwargs={"max_message_bytes": options.max_body_bytes}, grace_period=grace_period_s)
        server.servers.append(server._grpc_server.start(server.max_threads))
    p = model.predictor
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    grpc_note = f", gRPC {shown}:{grpc_port}" if enable_grpc else ""
    batching = (f"micro-batching up to {options.max_batch_size} images / {options.batch_timeout_ms:g} ms"
                if options.max_batch_size > 1 else "micro-batching off")
    print(f"edgeclf serve: http://{shown}:{http_port}/v2/models/{options.model_name}{grpc_note};"
          f" {p.model_path} ({p.info.arch}, {len(p.class_names)} classes, {options.precision}) on"
          f" {', '.join(p.providers)}; {workers} worker(s); {batching}", file=sys.stderr, flush=True)
    server.setup_event_loop()
    server.register_signal_handler()
    asyncio.run(server._serve())


__all__ = ["BodyLimitMiddleware", "EdgeclfModel", "MicroBatcher", "ServeOptions", "image_bytes",
           "parse_rest_infer_request", "serve"]

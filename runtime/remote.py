"""``RemotePredictor``: the :class:`~edgeclf.runtime.Predictor` API over the Open Inference Protocol.

>>> from edgeclf.runtime import RemotePredictor
>>> p = RemotePredictor("localhost:8080")                 # `edgeclf serve`, KServe or Triton; HTTP
>>> p = RemotePredictor("grpc://localhost:8081")          # the same over gRPC
>>> p.predict("photo.jpg")                                 # [Prediction(label='Leopards', ...), ...]

The client is NVIDIA's ``tritonclient`` (``pip install 'edgeclf[client]'``), imported when a
RemotePredictor is created. What is sent depends on the model's metadata:

* a model with an ``image`` BYTES input (``edgeclf serve``, the KServe InferenceService): the
  encoded image files, base64 (so the server decodes exactly the bytes the local Predictor would),
  ``top_k`` as a request parameter; the answer is the server's top-k.
* a model with only the ``input`` FP32 tensor (the Triton model repository written by
  ``edgeclf export --triton-repo``): the images are decoded and preprocessed here, with the
  preprocessing recorded in the model configuration's parameters, and top-k is taken from the
  returned ``logits`` with the runtime's own softmax — the same numbers as the local Predictor.

Errors: :class:`RemoteError` (server unreachable, unknown model, unexpected answer);
:class:`InvalidImageError` for an input that cannot be read here or that the server refuses.
"""

from __future__ import annotations

import base64
import io
import json
import os
from typing import Iterable, Sequence

import numpy as np

from .errors import EdgeclfError, InvalidImageError, UsageError
from .fetch import FetchOptions, fetch_image_bytes, is_url
from .image import DEFAULT_MAX_PIXELS, ImageSource, load_image
from .predictor import ON_ERROR, Prediction, _chunks, softmax, top_k_predictions
from .preprocess import PreprocessConfig, preprocess


class RemoteError(EdgeclfError):
    """The server cannot be reached, does not serve the model, or answers something unexpected."""


def _split_url(url: str) -> tuple[str, str]:
    """``"grpc://h:p"`` → ("grpc", "h:p"); ``"http://h:p"``, ``"h:p"`` → ("http", "h:p")."""
    for scheme in ("grpc", "http", "https"):
        if url.startswith(scheme + "://"):
            return ("grpc" if scheme == "grpc" else scheme), url[len(scheme) + 3:].rstrip("/")
    if "://" in url:
        raise UsageError(f"url={url!r}: use host:port, http://host:port or grpc://host:port")
    return "http", url.rstrip("/")


class RemotePredictor:
    """Top-k classification by a model served over the Open Inference Protocol.

    Args:
        url: ``host:port`` or ``http://host:port`` (REST) or ``grpc://host:port`` (gRPC).
        model_name: the served model (``edgeclf serve --model-name``, the Triton repository folder).
        timeout_s: network timeout per call, seconds.
        max_pixels: decompression-bomb guard when images are decoded here (Triton path).
        fetch: timeouts and size limit for http(s) image URLs, which are fetched here.

    Attributes:
        class_names: labels, index = logits column (from the model's metadata or configuration).
        mode: ``"image"`` (server decodes) or ``"tensor"`` (preprocessed here).

    Raises:
        RemoteError: unreachable server, unknown model, or a model without an ``image`` or
            ``input`` input.
        UsageError: malformed ``url``, or ``tritonclient`` not installed (``edgeclf[client]``).
    """

    def __init__(self, url: str, model_name: str = "edgeclf", timeout_s: float = 60.0,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, fetch: FetchOptions = FetchOptions()):
        self.url, self.model_name = url, model_name
        self.protocol, address = _split_url(url)
        self.timeout_s, self.max_pixels, self.fetch = timeout_s, max_pixels, fetch
        try:
            from tritonclient.utils import InferenceServerException
        except ModuleNotFoundError as err:
            raise UsageError("RemotePredictor needs tritonclient: pip install 'edgeclf[client]'") from err

        self._server_error = InferenceServerException
        if self.protocol == "grpc":
            import tritonclient.grpc as client
        else:
            import tritonclient.http as client
        self._client_mod = client
        kwargs = {} if self.protocol == "grpc" else {
            "ssl": self.protocol == "https", "connection_timeout": timeout_s, "network_timeout": timeout_s,
            "concurrency": 4}
        self._client = client.InferenceServerClient(address, **kwargs)
        meta = self._call(self._client.get_model_metadata, model_name)
        meta = _as_dict(meta)
        inputs = {i["name"]: i for i in meta.get("inputs", [])}
        params = meta.get("parameters") or {}
        if "image" in inputs:
            self.mode = "image"
            self.preprocess_config = (PreprocessConfig.from_dict(params["preprocess"])
                                      if isinstance(params.get("preprocess"), dict) else None)
            names = params.get("class_names")
        elif "input" in inputs:
            self.mode = "tensor"
            config = _as_dict(self._call(self._client.get_model_config, model_name))
            config = config.get("config", config)
            cparams = {k: v.get("string_value") for k, v in (config.get("parameters") or {}).items()}
            try:
                self.preprocess_config = PreprocessConfig.from_dict(json.loads(cparams["edgeclf_preprocess"]))
                names = json.loads(cparams["edgeclf_class_names"])
            except (KeyError, TypeError, ValueError) as err:
                raise RemoteError(f"{url} model {model_name!r}: its configuration has no edgeclf_preprocess/"
                                  "edgeclf_class_names parameters; write the repository with"
                                  " `edgeclf export --triton-repo`") from err
        else:
            raise RemoteError(f"{url} model {model_name!r}: expected an 'image' or 'input' input, it has {list(inputs)}")
        if self.mode == "tensor" and (not isinstance(names, list) or not names):
            raise RemoteError(f"{url} model {model_name!r}: its configuration names no classes")
        #: None where the metadata does not carry them (gRPC metadata has no parameters); the
        #: labels then come with each answer.
        self.class_names: tuple[str, ...] | None = tuple(names) if isinstance(names, list) else None

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except self._server_error as err:
            raise RemoteError(f"{self.url} model {self.model_name!r}: {_one_line(err)}") from err
        except (OSError, ConnectionError) as err:
            raise RemoteError(f"{self.url}: cannot reach the server ({_one_line(err)})") from err

    # -- inputs ------------------------------------------------------------------------------------
    def _encoded(self, image: ImageSource) -> bytes:
        """Encoded image bytes to send (the file as it is, so the server decodes what we would)."""
        if is_url(image):
            return fetch_image_bytes(image, self.fetch)
        if isinstance(image, (bytes, bytearray)):
            if not image:
                raise InvalidImageError("<0 bytes>", "empty (zero bytes)")
            return bytes(image)
        if isinstance(image, (str, os.PathLike)):
            load_image(image, max_pixels=self.max_pixels)  # same checks and messages as the Predictor
            with open(image, "rb") as fp:
                return fp.read()
        if hasattr(image, "read") and not isinstance(image, np.ndarray):
            data = image.read()
            if not isinstance(data, (bytes, bytearray)) or not data:
                raise InvalidImageError(getattr(image, "name", "<file>"), "empty or not opened in binary mode")
            return bytes(data)
        buf = io.BytesIO()  # PIL image or array: lossless PNG of its RGB pixels
        load_image(image, max_pixels=self.max_pixels).save(buf, format="PNG")
        return buf.getvalue()

    # -- inference ---------------------------------------------------------------------------------
    def _infer(self, name: str, datatype: str, array: np.ndarray, outputs: Sequence[str], parameters=None):
        c = self._client_mod
        inp = c.InferInput(name, list(array.shape), datatype)
        if self.protocol == "grpc":
            inp.set_data_from_numpy(array)
        else:
            inp.set_data_from_numpy(array, binary_data=True)
        requested = [c.InferRequestedOutput(o) for o in outputs]
        kwargs = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
        result = self._call(self._client.infer, self.model_name, [inp], outputs=requested,
                            parameters=parameters, **kwargs)
        return {o: result.as_numpy(o) for o in outputs}

    def _predict_encoded(self, blobs: list[bytes], k: int) -> list[list[Prediction]]:
        if self.mode == "image":
            array = np.array([base64.b64encode(b) for b in blobs], dtype=np.object_)
            out = self._infer("image", "BYTES", array, ("label", "index", "probability"), parameters={"top_k": k})
            return [[Prediction(_text(lab), int(i), float(p)) for lab, i, p in zip(lrow, irow, prow)]
                    for lrow, irow, prow in zip(out["label"], out["index"], out["probability"])]
        x = np.stack([preprocess(load_image(b, max_pixels=self.max_pixels), self.preprocess_config) for b in blobs])
        logits = self._infer("input", "FP32", x.astype(np.float32), ("logits",))["logits"]
        return [top_k_predictions(row, k, self.class_names) for row in softmax(logits)]

    def _check_k(self, top_k: int) -> int:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise UsageError(f"top_k={top_k!r}: give an integer >= 1")
        return min(top_k, len(self.class_names)) if self.class_names else top_k

    def predict(self, image: ImageSource, top_k: int = 3) -> list[Prediction]:
        """Top-k classes of one image, most probable first (as :meth:`Predictor.predict`).

        Raises:
            InvalidImageError: the input cannot be read, or the server refuses it as an image.
            RemoteError: the server fails otherwise.
            UsageError: bad ``top_k``.
        """
        return self.predict_batch([image], top_k=top_k, batch_size=1)[0]

    def predict_batch(self, images: Iterable[ImageSource], top_k: int = 3, batch_size: int = 32,
                      on_error: str = "raise") -> list:
        """Top-k classes of many images, ``batch_size`` per request (as :meth:`Predictor.predict_batch`).

        An input the server refuses (HTTP 400 naming an element) is retried alone, so with
        ``on_error="return"`` only that input carries the :class:`InvalidImageError`.
        """
        k = self._check_k(top_k)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise UsageError(f"batch_size={batch_size!r}: give an integer >= 1")
        if on_error not in ON_ERROR:
            raise UsageError(f"on_error={on_error!r}: use one of {', '.join(ON_ERROR)}")
        results: list = []
        for chunk in _chunks(enumerate(images), batch_size):
            blobs, slots = [], []
            for i, image in chunk:
                try:
                    blobs.append(self._encoded(image))
                    slots.append(None)
                except InvalidImageError as err:
                    if on_error == "raise":
                        raise type(err)(f"images[{i}] ({err.source})", err.reason) from err
                    slots.append(err)
            answers = iter(self._predict_with_fallback(blobs, k, [i for (i, _), s in zip(chunk, slots) if s is None],
                                                       on_error) if blobs else ())
            results.extend(next(answers) if s is None else s for s in slots)
        return results

    def _predict_with_fallback(self, blobs, k, positions, on_error):
        try:
            return self._predict_encoded(blobs, k)
        except (RemoteError, InvalidImageError) as err:
            if not _is_bad_image(err) and not isinstance(err, InvalidImageError):
                raise
            if len(blobs) == 1:
                bad = InvalidImageError(f"images[{positions[0]}]", _reason(err))
                if on_error == "raise":
                    raise bad from err
                return [bad]
        out = []
        for blob, pos in zip(blobs, positions):
            out.extend(self._predict_with_fallback([blob], k, [pos], on_error))
        return out

    def __repr__(self) -> str:
        return f"RemotePredictor({self.url!r}, model_name={self.model_name!r}, mode={self.mode!r})"


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else str(value)


def _is_bad_image(err: Exception) -> bool:
    text = str(err)
    return "[400]" in text or "INVALID_ARGUMENT" in text or "element" in text


def _reason(err: Exception) -> str:
    text = str(err)
    return text.split("element 0: ", 1)[1] if "element 0: " in text else text


def _one_line(err: Exception) -> str:
    text = (getattr(err, "message", None) and err.message()) or str(err)
    return " ".join(str(text).split())[:300]


def _as_dict(message) -> dict:
    """tritonclient answers dicts over HTTP and protobuf messages over gRPC: dict either way."""
    if isinstance(message, dict):
        return message
    from google.protobuf.json_format import MessageToDict

    d = MessageToDict(message, preserving_proto_field_name=True)
    for inp in d.get("inputs", []):
        inp["shape"] = [int(s) for s in inp.get("shape", [])]
    return d

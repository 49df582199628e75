"""The torch-free predictor: an exported edgeclf model + onnxruntime → top-k labels for images.

>>> from edgeclf.runtime import Predictor
>>> p = Predictor("artifact/")                    # or Predictor("model.onnx"), device="cuda", ...
>>> p.predict("photo.jpg")                         # [Prediction(label='Leopards', index=0, probability=0.97), ...]
>>> p.predict_batch(["a.jpg", "https://host/b.png"], on_error="return")

Inputs go through :func:`runtime.image.load_image` (or :func:`runtime.fetch.load_image_url` for
http(s) URLs) and :func:`runtime.preprocess.preprocess` with the model's own preprocessing, read
from the ONNX file's edgeclf metadata, so the runtime sees exactly the pixels training and the
export parity gate saw.

Probabilities are ``softmax(logits)`` computed in float64 with the row maximum subtracted first
(numerically stable for any logit magnitude), then reported as Python floats; logits come out of
onnxruntime in float32 (float16 for an fp16 model whose outputs were not kept in float32).

Thread safety: one ``InferenceSession`` is shared; onnxruntime supports concurrent ``run`` calls on
it, and everything else a call touches is local, so ``predict``/``predict_batch`` may be called from
several threads at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence, Union

import numpy as np

from . import providers as _prov
from .artifact import INPUT_NAME, OUTPUT_NAME, ModelInfo, resolve_model_file
from .errors import ArtifactError, InvalidImageError, UsageError
from .fetch import FetchOptions, is_url, load_image_url
from .image import DEFAULT_MAX_PIXELS, ImageSource, image_warnings, load_image
from .preprocess import preprocess

ON_ERROR = ("raise", "return")


@dataclass(frozen=True)
class Prediction:
    """One of the top-k answers for an image.

    Attributes:
        label: class name (``ModelInfo.class_names[index]``).
        index: column of the logits, 0-based.
        probability: softmax probability in [0, 1] (float64 computation, Python float).
    """

    label: str
    index: int
    probability: float

    def to_dict(self) -> dict:
        return {"label": self.label, "index": self.index, "probability": self.probability}


class Predictions(list):
    """The top-k :class:`Prediction` s of one image (a ``list``, most probable first), plus
    ``warnings``: reasons not to trust them, e.g. ``["small image: 8x8 px (short side < 32 px)"]``
    (see :data:`runtime.image.MIN_MEANINGFUL_SIDE`); empty for an ordinary image."""

    def __init__(self, predictions: Iterable[Prediction] = (), warnings: Sequence[str] = ()):
        super().__init__(predictions)
        self.warnings: list[str] = list(warnings)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits (N, C), any float dtype → float64 (N, C), rows summing to 1.

    Subtracts each row's maximum before ``exp`` so large logits cannot overflow.
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def top_k_predictions(probs: np.ndarray, k: int, class_names: Sequence[str]) -> list[Prediction]:
    """The ``k`` most probable classes of one probability row (C,), most probable first.

    Ties are broken by the lower class index (stable sort), so results are deterministic.
    """
    order = np.argsort(-probs, kind="stable")[:k]
    return [Prediction(class_names[i], int(i), float(probs[i])) for i in order]


def _ort_errors() -> tuple[type[BaseException], ...]:
    """onnxruntime's exception classes (they derive from ``Exception`` only), plus what its Python
    layer raises (``RuntimeError``, ``ValueError``)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    found = [c for c in vars(state).values()
             if isinstance(c, type) and issubclass(c, Exception) and c.__module__ == state.__name__]
    return tuple(found) + (RuntimeError, ValueError)


class Predictor:
    """Top-k classification of images with an exported edgeclf ONNX model.

    Args:
        artifact: an artifact directory (written by ``edgeclf export``; the ONNX file for
            ``precision`` is used) or a path to an ``.onnx`` file carrying edgeclf metadata.
        device: ``"auto"`` (CUDA only when it really works, else CPU), ``"cpu"``, ``"cuda"`` or
            ``"cuda:N"`` (GPU number N; both raise :class:`ProviderError` unless CUDA is active).
            See :mod:`runtime.providers`.
        providers: explicit onnxruntime providers (names or ``(name, options)`` tuples), taking
            precedence over ``device``; each one except the CPU provider must end up active.
        intra_op_threads: onnxruntime intra-op thread count (``None``: onnxruntime's default,
            one per physical core).
        precision: ``"fp32"`` (default), ``"fp16"`` or ``"int8"``: which ONNX file of an artifact
            directory to load (ignored for an ``.onnx`` path).
        max_pixels: decompression-bomb guard, largest width x height accepted (``None``: no
            limit of ours; Pillow still refuses more than 2 x ``PIL.Image.MAX_IMAGE_PIXELS``).
        fetch: timeouts and size limit for http(s) URLs (:class:`runtime.fetch.FetchOptions`).

    Attributes:
        model_path: the ONNX file loaded (``Path``).
        info: the model's :class:`~runtime.artifact.ModelInfo` (class names, preprocessing, arch).
        class_names: ``info.class_names``, index = logits column.
        providers: execution providers active in the session, in priority order
            (``session.get_providers()``), e.g. ``["CPUExecutionProvider"]``.
        device: ``"cuda"`` if a GPU provider is active, else ``"cpu"``.
        device_note: for ``device="auto"`` running on the CPU, why CUDA was not used; else ``None``.

    Raises:
        ArtifactError: missing directory or ONNX file, a file onnxruntime cannot load, no or
            malformed edgeclf metadata, inputs/outputs not of the edgeclf shape.
        ProviderError: ``device="cuda"`` or a requested provider that is not active.
        UsageError: unknown ``device``/``precision``, bad ``intra_op_threads``.
    """

    def __init__(self, artifact: Union[str, os.PathLike], device: str = "auto",
                 providers: Sequence | None = None, intra_op_threads: int | None = None,
                 precision: str = "fp32", max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 fetch: FetchOptions = FetchOptions()):
        import onnxruntime as ort

        if intra_op_threads is not None and (
                isinstance(intra_op_threads, bool) or not isinstance(intra_op_threads, int) or intra_op_threads < 1):
            raise UsageError(f"intra_op_threads={intra_op_threads!r}: give an integer >= 1, or None for onnxruntime's default")
        if max_pixels is not None and max_pixels < 1:
            raise UsageError(f"max_pixels={max_pixels!r}: give a positive pixel count, or None")
        self.model_path = resolve_model_file(artifact, precision)
        if self.model_path.suffix.lower() != ".onnx":
            raise ArtifactError(f"{self.model_path}: not an .onnx file; give an artifact directory"
                                " or the model.onnx inside it")
        self.max_pixels = max_pixels
        self.fetch = fetch
        request, required, note = _prov.plan_providers(device, providers, ort.get_available_providers())

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no per-node placement warnings on stderr
        if intra_op_threads is not None:
            options.intra_op_num_threads = intra_op_threads
        try:
            self.session = ort.InferenceSession(str(self.model_path), sess_options=options, providers=request)
        except _ort_errors() as err:
            raise ArtifactError(f"{self.model_path}: onnxruntime cannot load it"
                                f" ({type(err).__name__}: {str(err).strip().splitlines()[0]})") from err

        self.providers: list[str] = list(self.session.get_providers())
        _prov.check_active(required, self.providers, str(self.model_path))
        if note is None and _prov.CUDA in [_prov.provider_name(p) for p in request] \
                and _prov.CUDA not in self.providers:
            note = "CUDAExecutionProvider did not activate (CUDA/cuDNN libraries not loadable?)"
        self.device = "cuda" if any(p in _prov.GPU_PROVIDERS for p in self.providers) else "cpu"
        self.device_note = note

        meta = self.session.get_modelmeta().custom_metadata_map
        self.info: ModelInfo = ModelInfo.from_metadata(meta, str(self.model_path))
        self.class_names: tuple[str, ...] = self.info.class_names
        self.preprocess_config = self.info.preprocess
        self._check_io()

    # -- model I/O -----------------------------------------------------------------------------
    def _check_io(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        where = str(self.model_path)
        if len(inputs) != 1:
            raise ArtifactError(f"{where}: expected one input ({INPUT_NAME!r}), the model has"
                                f" {[i.name for i in inputs]}")
        inp = inputs[0]
        crop = self.preprocess_config.crop_size
        shape = list(inp.shape)
        expected = [None, 3, crop, crop]  # None: any (symbolic batch size)
        if len(shape) != 4 or any(isinstance(s, int) and e is not None and s != e
                                  for s, e in zip(shape, expected)):
            raise ArtifactError(f"{where}: input {inp.name!r} has shape {shape}; the metadata says"
                                f" [N, 3, {crop}, {crop}]")
        if inp.type not in ("tensor(float)", "tensor(float16)"):
            raise ArtifactError(f"{where}: input {inp.name!r} is {inp.type}, expected tensor(float)")
        names = [o.name for o in outputs]
        self.input_name = inp.name
        self.output_name = OUTPUT_NAME if OUTPUT_NAME in names else names[0]
        out_shape = list(outputs[names.index(self.output_name)].shape)
        if len(out_shape) != 2 or isinstance(out_shape[1], int) and out_shape[1] != len(self.class_names):
            raise ArtifactError(f"{where}: output {self.output_name!r} has shape {out_shape}; the metadata"
                                f" names {len(self.class_names)} classes, so expected [N, {len(self.class_names)}]")
        self._input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        self._fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on preprocessed inputs.

        Args:
            batch: float32 (N, 3, crop_size, crop_size), as :func:`runtime.preprocess.preprocess_batch`.
        Returns:
            float32 logits (N, num_classes).
        Raises:
            UsageError: wrong shape.
            ArtifactError: the model's output does not have one column per class.
        """
        crop = self.preprocess_config.crop_size
        if batch.ndim != 4 or batch.shape[1:] != (3, crop, crop):
            raise UsageError(f"batch of shape {batch.shape}: expected (N, 3, {crop}, {crop})")
        n = batch.shape[0]
        x = np.ascontiguousarray(batch, dtype=self._input_dtype)
        step = self._fixed_batch or max(n, 1)
        parts = []
        for start in range(0, n, step):
            chunk = x[start:start + step]
            if self._fixed_batch and len(chunk) < step:  # static batch dimension: pad, then drop
                pad = np.zeros((step - len(chunk), *chunk.shape[1:]), dtype=chunk.dtype)
                out = self.session.run([self.output_name], {self.input_name: np.concatenate([chunk, pad])})[0]
                out = out[:len(chunk)]
            else:
                out = self.session.run([self.output_name], {self.input_name: chunk})[0]
            parts.append(np.asarray(out, dtype=np.float32))
        if not parts:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        out = np.concatenate(parts)
        if out.ndim != 2 or out.shape[1] != len(self.class_names):
            raise ArtifactError(f"{self.model_path}: output {self.output_name!r} has shape {out.shape},"
                                f" expected (N, {len(self.class_names)}) for {len(self.class_names)} classes")
        return out

    # -- images --------------------------------------------------------------------------------
    def load(self, image: ImageSource):
        """Decode one input (path, URL, bytes, file object, PIL image, uint8 array) to RGB PIL."""
        if is_url(image):
            return load_image_url(image, max_pixels=self.max_pixels, options=self.fetch)
        return load_image(image, max_pixels=self.max_pixels)

    def _prepare(self, image: ImageSource) -> tuple[np.ndarray, list[str]]:
        """Decode and preprocess one input: float32 (3, crop, crop) and its warnings."""
        img = self.load(image)
        return preprocess(img, self.preprocess_config), image_warnings(img)

    def _check_k(self, top_k: int) -> int:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise UsageError(f"top_k={top_k!r}: give an integer >= 1")
        return min(top_k, len(self.class_names))

    def predict(self, image: ImageSource, top_k: int = 3) -> list[Prediction]:
        """Top-k classes of one image, most probable first.

        Args:
            image: a path, an http(s) URL, ``bytes``, a binary file object, a ``PIL.Image.Image``
                or a numpy uint8 (H, W, 3) RGB array.
            top_k: how many classes to return (capped at the number of classes).
        Returns:
            ``min(top_k, num_classes)`` :class:`Prediction` s sorted by probability, descending,
            as :class:`Predictions` (a list whose ``warnings`` flag e.g. a tiny image).
        Raises:
            InvalidImageError (or its subclasses ImageNotFoundError, ImageTooLargeError,
            ImageFetchError): the input cannot be read/decoded; the message names it.
            UsageError: bad ``top_k``; an empty path.
        """
        k = self._check_k(top_k)
        x, warnings = self._prepare(image)
        probs = softmax(self.logits(x[None]))[0]  # (1, 3, H, W) in, (C,) out
        return Predictions(top_k_predictions(probs, k, self.class_names), warnings)

    def predict_batch(self, images: Iterable[ImageSource], top_k: int = 3, batch_size: int = 32,
                      on_error: str = "raise") -> list:
        """Top-k classes of many images, run through the model ``batch_size`` at a time.

        Args:
            images: any iterable of inputs accepted by :meth:`predict` (consumed lazily, one
                batch at a time, so a generator over a large folder does not load it all).
            top_k: classes per image.
            batch_size: images per ``session.run`` (memory: batch_size x 3 x crop² x 4 bytes).
            on_error: what one input that cannot be read does:
                ``"raise"`` (default) raises its exception at once, its message prefixed with
                the input's position, e.g. ``images[3] (<bytes>): empty``; the other results are
                lost. ``"return"`` puts the exception object in that input's place and goes on.
        Returns:
            One entry per input, in order: :class:`Predictions` (a ``list[Prediction]`` with
            ``warnings``), or (``on_error="return"``) the :class:`InvalidImageError` for an input
            that failed.
        Raises:
            InvalidImageError: with ``on_error="raise"``, the first input that failed.
            UsageError: bad ``top_k``, ``batch_size`` or ``on_error``.
        """
        k = self._check_k(top_k)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise UsageError(f"batch_size={batch_size!r}: give an integer >= 1")
        if on_error not in ON_ERROR:
            raise UsageError(f"on_error={on_error!r}: use one of {', '.join(ON_ERROR)}")
        results: list = []
        for chunk in _chunks(enumerate(images), batch_size):
            arrays, slots = [], []
            for i, image in chunk:
                try:
                    x, warnings = self._prepare(image)
                    arrays.append(x)
                except InvalidImageError as err:
                    if on_error == "raise":
                        raise type(err)(f"images[{i}] ({err.source})", err.reason) from err
                    slots.append(err)
                else:
                    slots.append(warnings)
            probs = iter(softmax(self.logits(np.stack(arrays))) if arrays else ())
            results.extend(s if isinstance(s, Exception) else
                           Predictions(top_k_predictions(next(probs), k, self.class_names), s) for s in slots)
        return results

    def __repr__(self) -> str:
        return (f"Predictor({str(self.model_path)!r}, arch={self.info.arch!r},"
                f" classes={len(self.class_names)}, providers={self.providers})")


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk

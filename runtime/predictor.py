"""The torch-free predictor: an exported edgeclf model + onnxruntime → top-k labels for images.

>>> from edgeclf.runtime import Predictor
>>> p = Predictor("artifact/")                    # or Predictor("model.onnx"), device="cuda", ...
>>> p.predict("photo.jpg")                         # [Prediction(label='Leopards', index=0, probability=0.97), ...]
>>> p.predict_batch(["a.jpg", "https://host/b.png"], on_error="return")

Inputs go through :func:`runtime.image.load_image` (or :func:`runtime.fetch.load_image_url` for
http(s) URLs) and :func:`runtime.preprocess.preprocess` with the model's own preprocessing, read
from the ONNX file's edgeclf metadata, so the runtime sees exactly the pixels training and the
export parity gate saw.

Probabilities are :func:`runtime.inference.softmax` of the logits (float64, row maximum subtracted
first, numerically stable for any logit magnitude), reported as Python floats; top-k is
:func:`runtime.inference.top_k` (ties → lower class index). The session is a
:class:`runtime.inference.OrtSession` — the same code the export parity gates and the benchmark run.

Thread safety: one ``InferenceSession`` is shared; onnxruntime supports concurrent ``run`` calls on
it, and everything else a call touches is local, so ``predict``/``predict_batch`` may be called from
several threads at once.

Fork safety: an onnxruntime session does not survive ``os.fork()`` (its thread pools stay in the
parent: a child that runs it crashes, one that merely frees it hangs at exit). The session
(:class:`runtime.inference.OrtSession`) therefore remembers the PID that created it; in a forked
child (prefork servers, ``multiprocessing`` with fork, gunicorn ``--preload``) the inherited session
is set aside, never run or freed, and a new one is created lazily on first use. onnxruntime's own
C++ exit handlers also hang in a forked child, so such a child ends with ``os._exit`` after Python's
shutdown work (see :func:`runtime.inference.skip_native_exit_handlers`).
"""

from __future__ import annotations

import os
from typing import Iterable, Iterator, Sequence, Union

import numpy as np

from .artifact import INPUT_NAME, ModelInfo, resolve_model_file
from .errors import ArtifactError, InvalidImageError, UsageError
from .fetch import FetchOptions, is_url, load_image_url
from .image import DEFAULT_MAX_PIXELS, ImageSource, image_warnings, load_image
from .inference import OrtSession, Prediction, softmax, top_k_predictions
from .preprocess import preprocess

ON_ERROR = ("raise", "return")


class Predictions(list):
    """The top-k :class:`Prediction` s of one image (a ``list``, most probable first), plus
    ``warnings``: reasons not to trust them, e.g. ``["small image: 8x8 px (short side < 32 px)"]``
    (see :data:`runtime.image.MIN_MEANINGFUL_SIDE`); empty for an ordinary image."""

    def __init__(self, predictions: Iterable[Prediction] = (), warnings: Sequence[str] = ()):
        super().__init__(predictions)
        self.warnings: list[str] = list(warnings)


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
        engine: the :class:`runtime.inference.OrtSession` running the model (``run(batch) -> logits``).
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
        if max_pixels is not None and max_pixels < 1:
            raise UsageError(f"max_pixels={max_pixels!r}: give a positive pixel count, or None")
        self.model_path = resolve_model_file(artifact, precision)
        if self.model_path.suffix.lower() != ".onnx":
            raise ArtifactError(f"{self.model_path}: not an .onnx file; give an artifact directory"
                                " or the model.onnx inside it")
        self.max_pixels = max_pixels
        self.fetch = fetch
        self.engine = OrtSession(self.model_path, device=device, providers=providers,
                                 intra_op_threads=intra_op_threads)
        self.providers: list[str] = self.engine.providers
        self.device = self.engine.device
        self.device_note = self.engine.device_note
        self.info: ModelInfo = ModelInfo.from_metadata(self.engine.metadata, str(self.model_path))
        self.class_names: tuple[str, ...] = self.info.class_names
        self.preprocess_config = self.info.preprocess
        self._check_io()

    @property
    def session(self):
        """The ``onnxruntime.InferenceSession`` (of this process; re-created after a fork)."""
        return self.engine.session

    # -- model I/O -----------------------------------------------------------------------------
    def _check_io(self) -> None:
        inputs, outputs = self.engine.inputs, self.engine.outputs
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
        self.output_name = self.engine.output_name  # "logits" if the model has it, else its first output
        out_shape = list(outputs[names.index(self.output_name)].shape)
        if len(out_shape) != 2 or isinstance(out_shape[1], int) and out_shape[1] != len(self.class_names):
            raise ArtifactError(f"{where}: output {self.output_name!r} has shape {out_shape}; the metadata"
                                f" names {len(self.class_names)} classes, so expected [N, {len(self.class_names)}]")

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
        if batch.shape[0] == 0:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        out = self.engine.run(batch)
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

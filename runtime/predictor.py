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

Engines: onnxruntime (default) or, with the ``openvino`` extra, OpenVINO on the same ONNX file
(``engine="openvino"``, :mod:`runtime.openvino_engine`); preprocessing, softmax and top-k are the
same code either way.

``predict_batch`` overlaps decoding with inference: a bounded thread pool (``decode_threads``;
Pillow releases the GIL while decoding and resizing) prepares the next images while the model runs
on the current batch. At most ``batch_size + 2 * decode_threads`` inputs are in flight, so memory
stays bounded for any number of inputs; results keep the input order.

Thread safety: one ``InferenceSession`` (or compiled OpenVINO model, one request per thread) is
shared; onnxruntime supports concurrent ``run`` calls on it, and everything else a call touches is
local, so ``predict``/``predict_batch`` may be called from several threads at once.

Fork safety: an onnxruntime session does not survive ``os.fork()`` (its thread pools stay in the
parent: a child that runs it crashes, one that merely frees it hangs at exit). The session
(:class:`runtime.inference.OrtSession`) therefore remembers the PID that created it; in a forked
child (prefork servers, ``multiprocessing`` with fork, gunicorn ``--preload``) the inherited session
is set aside, never run or freed, and a new one is created lazily on first use. onnxruntime's own
C++ exit handlers also hang in a forked child, so such a child ends with ``os._exit`` after Python's
shutdown work (see :func:`runtime.inference.skip_native_exit_handlers`).
"""

from __future__ import annotations

import dataclasses
import os
from collections import deque
from typing import Iterable, Iterator, Sequence, Union

import numpy as np

from .artifact import INPUT_NAME, ModelInfo, resolve_model_file
from .errors import ArtifactError, InvalidImageError, UsageError
from .fetch import FetchOptions, is_url, load_image_url
from .image import DEFAULT_MAX_PIXELS, ImageSource, image_warnings, load_image
from .inference import OrtSession, Prediction, softmax, top_k_predictions
from .preprocess import DECODE_MODES, decode_size, preprocess

ON_ERROR = ("raise", "return")
#: ``Predictor(engine=...)`` values.
ENGINES = ("onnxruntime", "openvino")
#: Default decode/preprocess threads of ``predict_batch``: one per CPU, at most 8.
DEFAULT_DECODE_THREADS = max(1, min(8, os.cpu_count() or 1))


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
        device: ``"auto"`` (CUDA only when it really works, else CPU), ``"cpu"`` or ``"cuda"``
            (raise :class:`ProviderError` unless CUDA is active). See :mod:`runtime.providers`.
        providers: explicit onnxruntime providers (names or ``(name, options)`` tuples), taking
            precedence over ``device``; each one except the CPU provider must end up active.
        intra_op_threads: onnxruntime intra-op thread count (``None``: onnxruntime's default,
            one per physical core).
        precision: ``"fp32"`` (default), ``"fp16"`` or ``"int8"``: which ONNX file of an artifact
            directory to load (ignored for an ``.onnx`` path).
        max_pixels: decompression-bomb guard, largest width x height accepted (``None``: no
            limit of ours; Pillow still refuses more than 2 x ``PIL.Image.MAX_IMAGE_PIXELS``).
        fetch: timeouts and size limit for http(s) URLs (:class:`runtime.fetch.FetchOptions`).
        engine: ``"onnxruntime"`` (default) or ``"openvino"`` (needs ``edgeclf[openvino]``;
            CPU only, ``intra_op_threads`` becomes OpenVINO's ``INFERENCE_NUM_THREADS``).
        decode: ``None`` (default: the model's own ``preprocess.decode``), ``"exact"`` or
            ``"draft"``. A mode other than the model's is refused unless
            ``allow_decode_override=True``: the model was trained and gated on the other pixels.
        allow_decode_override: accept a ``decode`` that differs from the model's (e.g. to measure
            draft decoding on a model trained exact); recorded in ``decode_overridden``.
        decode_threads: default thread count of :meth:`predict_batch`'s decode/preprocess pool
            (``None``: :data:`DEFAULT_DECODE_THREADS`; ``0``: decode serially in the caller's thread).
            With a pool, onnxruntime's intra-op threads do not spin-wait between runs
            (``session.intra_op.allow_spinning = 0``), so they leave the cores to the decoders.

    Attributes:
        model_path: the ONNX file loaded (``Path``).
        info: the model's :class:`~runtime.artifact.ModelInfo` (class names, preprocessing, arch).
        class_names: ``info.class_names``, index = logits column.
        providers: execution providers active in the session, in priority order
            (``session.get_providers()``), e.g. ``["CPUExecutionProvider"]``.
        device: ``"cuda"`` if a GPU provider is active, else ``"cpu"``.
        device_note: for ``device="auto"`` running on the CPU, why CUDA was not used; else ``None``.
        engine: ``"onnxruntime"`` or ``"openvino"``.
        backend: the object running the model, ``run(batch) -> logits``: a
            :class:`runtime.inference.OrtSession` (the code the export gates run) or a
            :class:`runtime.openvino_engine.OpenVinoEngine`.
        preprocess_config: the preprocessing applied (the model's, with
            an allowed ``decode`` override). decode_overridden: True if ``decode`` differs from the
            model's. decode_threads: :meth:`predict_batch`'s default pool size.

    Raises:
        ArtifactError: missing directory or ONNX file, a file onnxruntime cannot load, no or
            malformed edgeclf metadata, inputs/outputs not of the edgeclf shape.
        ProviderError: ``device="cuda"`` or a requested provider that is not active.
        UsageError: unknown ``device``/``precision``/``engine``/``decode``, bad
            ``intra_op_threads``/``decode_threads``, openvino not installed, a ``decode`` override
            without ``allow_decode_override``.
    """

    def __init__(self, artifact: Union[str, os.PathLike], device: str = "auto",
                 providers: Sequence | None = None, intra_op_threads: int | None = None,
                 precision: str = "fp32", max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 fetch: FetchOptions = FetchOptions(), engine: str = "onnxruntime", decode: str | None = None,
                 allow_decode_override: bool = False, decode_threads: int | None = None):
        if engine not in ENGINES:
            raise UsageError(f"engine={engine!r}: use one of {', '.join(ENGINES)}")
        if decode is not None and decode not in DECODE_MODES:
            raise UsageError(f"decode={decode!r}: use one of {', '.join(DECODE_MODES)}, or None for the model's own")
        self.decode_threads = DEFAULT_DECODE_THREADS if decode_threads is None else _check_threads(decode_threads)
        if max_pixels is not None and max_pixels < 1:
            raise UsageError(f"max_pixels={max_pixels!r}: give a positive pixel count, or None")
        self.model_path = resolve_model_file(artifact, precision)
        if self.model_path.suffix.lower() != ".onnx":
            raise ArtifactError(f"{self.model_path}: not an .onnx file; give an artifact directory"
                                " or the model.onnx inside it")
        self.max_pixels = max_pixels
        self.fetch = fetch
        self.engine = engine
        if engine == "openvino":
            meta, inputs, outputs = self._open_openvino(device, providers, intra_op_threads)
        else:
            meta, inputs, outputs = self._open_onnxruntime(device, providers, intra_op_threads)
        self.info: ModelInfo = ModelInfo.from_metadata(meta, str(self.model_path))
        self.class_names: tuple[str, ...] = self.info.class_names
        self.preprocess_config = self.info.preprocess
        self.decode_overridden = decode is not None and decode != self.info.preprocess.decode
        if self.decode_overridden:
            if not allow_decode_override:
                raise UsageError(
                    f"decode={decode!r}: {self.model_path.name} was trained and gated with"
                    f" decode={self.info.preprocess.decode!r}; drop decode= to use the model's, or pass"
                    " allow_decode_override=True to accept predictions that may differ from the gated ones")
            self.preprocess_config = dataclasses.replace(self.info.preprocess, decode=decode)
        self._check_io(inputs, outputs)

    def _open_openvino(self, device, providers, intra_op_threads):
        """Compile the model with OpenVINO; returns (metadata, inputs, outputs) for the checks."""
        from .openvino_engine import OpenVinoEngine

        if device not in ("auto", "cpu") or providers is not None:
            raise UsageError(f"engine='openvino' runs on the CPU: drop device={device!r}/providers=, or use"
                             " engine='onnxruntime'")
        self.backend = OpenVinoEngine(self.model_path, threads=intra_op_threads)
        self.providers = list(self.backend.providers)
        self.device, self.device_note = "cpu", None
        return self.backend.metadata, self.backend.inputs, self.backend.outputs

    def _open_onnxruntime(self, device, providers, intra_op_threads):
        """Create the onnxruntime session (the inference core's :class:`OrtSession`: verified
        providers, fork-safe); returns (metadata, inputs, outputs) for the checks."""
        # With a decode pool, idle intra-op threads would otherwise spin for a while after each
        # run, taking the cores the decoders need; measured on 2 shared cores: model-only and
        # files→top-k both faster without spinning.
        config = {"session.intra_op.allow_spinning": "0"} if self.decode_threads else None
        self.backend = OrtSession(self.model_path, device=device, providers=providers,
                                  intra_op_threads=intra_op_threads, session_config=config)
        self.providers: list[str] = self.backend.providers
        self.device = self.backend.device
        self.device_note = self.backend.device_note
        signature = [(p.name, list(p.shape), p.type) for p in self.backend.inputs]
        outputs = [(p.name, list(p.shape), p.type) for p in self.backend.outputs]
        return self.backend.metadata, signature, outputs

    @property
    def session(self):
        """The ``onnxruntime.InferenceSession`` of this process (re-created after a fork);
        ``None`` with ``engine="openvino"``."""
        return self.backend.session if isinstance(self.backend, OrtSession) else None

    # -- model I/O -----------------------------------------------------------------------------
    def _check_io(self, inputs: list[tuple], outputs: list[tuple]) -> None:
        """inputs/outputs: ``(name, shape, type)`` per port, type as onnxruntime spells it."""
        where = str(self.model_path)
        if len(inputs) != 1:
            raise ArtifactError(f"{where}: expected one input ({INPUT_NAME!r}), the model has"
                                f" {[i[0] for i in inputs]}")
        inp_name, shape, inp_type = inputs[0]
        crop = self.preprocess_config.crop_size
        expected = [None, 3, crop, crop]  # None: any (symbolic batch size)
        if len(shape) != 4 or any(isinstance(s, int) and e is not None and s != e
                                  for s, e in zip(shape, expected)):
            raise ArtifactError(f"{where}: input {inp_name!r} has shape {shape}; the metadata says"
                                f" [N, 3, {crop}, {crop}]")
        if inp_type not in ("tensor(float)", "tensor(float16)"):
            raise ArtifactError(f"{where}: input {inp_name!r} is {inp_type}, expected tensor(float)")
        names = [o[0] for o in outputs]
        self.input_name = inp_name
        self.output_name = self.backend.output_name  # "logits" if the model has it, else its first output
        out_shape = list(outputs[names.index(self.output_name)][1])
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
        out = self.backend.run(batch)  # float32 (N, C); static batch sizes handled by the backend
        if out.ndim != 2 or out.shape[1] != len(self.class_names):
            raise ArtifactError(f"{self.model_path}: output {self.output_name!r} has shape {out.shape},"
                                f" expected (N, {len(self.class_names)}) for {len(self.class_names)} classes")
        return out

    # -- images --------------------------------------------------------------------------------
    def load(self, image: ImageSource):
        """Decode one input (path, URL, bytes, file object, PIL image, uint8 array) to RGB PIL,
        JPEGs DCT-downscaled when the preprocessing says ``decode="draft"``."""
        draft_to = decode_size(self.preprocess_config)
        if is_url(image):
            return load_image_url(image, max_pixels=self.max_pixels, options=self.fetch, draft_to=draft_to)
        return load_image(image, max_pixels=self.max_pixels, draft_to=draft_to)

    def prepare(self, image: ImageSource) -> np.ndarray:
        """Decode + preprocess one input: float32 (3, crop_size, crop_size).

        Raises:
            InvalidImageError: the input cannot be read/decoded.
        """
        return self._prepare(image)[0]

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
                      on_error: str = "raise", decode_threads: int | None = None) -> list:
        """Top-k classes of many images, run through the model ``batch_size`` at a time.

        Decoding and preprocessing run in a pool of ``decode_threads`` threads, ahead of the model:
        while one batch is inferred the next one is being decoded. At most
        ``batch_size + 2 * decode_threads`` inputs are in flight (read, not yet returned), so a
        generator over a large folder is consumed lazily with bounded memory.

        Args:
            images: any iterable of inputs accepted by :meth:`predict` (consumed lazily).
            top_k: classes per image.
            batch_size: images per model call (memory: batch_size x 3 x crop² x 4 bytes, twice).
            on_error: what one input that cannot be read does:
                ``"raise"`` (default) raises its exception, its message prefixed with the input's
                position, e.g. ``images[3] (<bytes>): empty``; the other results are lost.
                ``"return"`` puts the exception object in that input's place and goes on.
            decode_threads: threads decoding/preprocessing (``None``: the predictor's
                ``decode_threads``; ``0``: serially in this thread, no pool).
        Returns:
            One entry per input, in order: :class:`Predictions` (a ``list[Prediction]`` with
            ``warnings``), or (``on_error="return"``) the exception of an input that failed:
            :class:`InvalidImageError` (unreadable) or :class:`UsageError` (an empty path).
            Identical for any thread count.
        Raises:
            InvalidImageError: with ``on_error="raise"``, the first input (in order) that failed.
            UsageError: bad ``top_k``, ``batch_size``, ``on_error`` or ``decode_threads``.
        """
        return list(self.predict_iter(images, top_k, batch_size, on_error, decode_threads))

    def predict_iter(self, images: Iterable[ImageSource], top_k: int = 3, batch_size: int = 32,
                     on_error: str = "raise", decode_threads: int | None = None) -> Iterator:
        """:meth:`predict_batch` as a generator: yields each input's result, in input order, as
        soon as its batch is through the model (for streaming output over large folders).

        The arguments are checked when iteration starts. Closing the generator early stops the
        decode pool.
        """
        k = self._check_k(top_k)
        if isinstance(images, (str, bytes, bytearray, os.PathLike)):
            raise UsageError(f"images={images!r:.80}: give a list (or any iterable) of inputs; for one image"
                             " use predict()")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise UsageError(f"batch_size={batch_size!r}: give an integer >= 1")
        if on_error not in ON_ERROR:
            raise UsageError(f"on_error={on_error!r}: use one of {', '.join(ON_ERROR)}")
        threads = self.decode_threads if decode_threads is None else _check_threads(decode_threads)
        for chunk in _chunks(self._prepared(images, threads, batch_size), batch_size):
            arrays, slots = [], []
            for i, prepared in chunk:
                if isinstance(prepared, Exception):
                    if on_error == "raise":
                        if isinstance(prepared, InvalidImageError):
                            raise type(prepared)(f"images[{i}] ({prepared.source})", prepared.reason) from prepared
                        raise UsageError(f"images[{i}]: {prepared}") from prepared
                    slots.append(prepared)
                else:
                    x, warnings = prepared
                    arrays.append(x)
                    slots.append(warnings)
            probs = iter(softmax(self.logits(np.stack(arrays))) if arrays else ())
            yield from (s if isinstance(s, Exception) else
                        Predictions(top_k_predictions(next(probs), k, self.class_names), s) for s in slots)

    def _prepare_or_error(self, image: ImageSource):
        """:meth:`_prepare` (array, warnings), with the exception of an input that cannot be used
        (unreadable, or an empty path) returned instead of raised."""
        try:
            return self._prepare(image)
        except (InvalidImageError, UsageError) as err:
            return err

    def _prepared(self, images: Iterable[ImageSource], threads: int, batch_size: int) -> Iterator[tuple]:
        """``(index, (float32 (3, H, W) array, warnings) or InvalidImageError)`` per input, in input order;
        with ``threads > 0`` computed by a pool at most ``batch_size + 2 * threads`` inputs ahead."""
        if threads == 0:
            yield from ((i, self._prepare_or_error(image)) for i, image in enumerate(images))
            return
        from concurrent.futures import ThreadPoolExecutor

        window = batch_size + 2 * threads
        source = enumerate(images)
        pending: deque = deque()
        pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="edgeclf-decode")
        try:
            for i, image in source:
                pending.append((i, pool.submit(self._prepare_or_error, image)))
                if len(pending) >= window:
                    j, future = pending.popleft()
                    yield j, future.result()
            while pending:
                j, future = pending.popleft()
                yield j, future.result()
        finally:  # also on an early exit (on_error="raise"): drop what was not started
            pool.shutdown(wait=True, cancel_futures=True)

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


def _check_threads(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"decode_threads={value!r}: give an integer >= 0 (0: decode in the calling thread)")
    return value

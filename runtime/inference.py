"""The inference core: softmax, top-k and the onnxruntime session, once for every stage.

:class:`~edgeclf.runtime.Predictor`, the export parity gates and the benchmark all call these, so
the gates test the code that ships:

* :func:`softmax` — float64, row maximum subtracted first (no overflow for any logit magnitude).
* :func:`top_k` — indices of the k largest scores, largest first, ties → lower index (stable).
* :func:`top_k_predictions` — the same as :class:`Prediction` objects with labels.
* :class:`OrtSession` — an ``onnxruntime.InferenceSession`` built from a few engine-neutral
  settings (device or explicit providers, thread counts, graph optimisation level, log severity),
  with the active providers verified (:mod:`edgeclf.runtime.providers`) and a
  ``run(batch) -> logits`` method. It re-creates the onnxruntime session lazily in a process
  forked after it was built, so a :class:`Predictor` made before ``os.fork()`` (gunicorn
  ``--preload``, multiprocessing's fork start method) works in the child.

onnxruntime is imported only when an :class:`OrtSession` is created.
"""

from __future__ import annotations

import ctypes
import os
import sys
import weakref
from pathlib import Path
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from . import providers as _prov
from .errors import ArtifactError, UsageError, first_line

#: ``graph_optimization`` names → ``onnxruntime.GraphOptimizationLevel`` member names.
GRAPH_OPTIMIZATION_LEVELS = {
    "off": "ORT_DISABLE_ALL",  # the graph exactly as written (what other runtimes see)
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",   # onnxruntime's default
}


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


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of logits (N, C) or (C,), any float dtype → float64, summing to 1.

    Subtracts each row's maximum before ``exp`` so large logits cannot overflow.
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores along the last axis, largest first.

    Args:
        scores: logits or probabilities, (N, C) or (C,), any real dtype (compared in float64).
        k: how many (values above C are capped at C).
    Returns:
        int64 indices, (N, min(k, C)) or (min(k, C),). Ties go to the lower class index (stable
        sort), so results are deterministic and equal for logits and their softmax.
    """
    s = np.asarray(scores, dtype=np.float64)
    return np.argsort(-s, axis=-1, kind="stable")[..., :k].astype(np.int64, copy=False)


def top_k_predictions(probs: np.ndarray, k: int, class_names: Sequence[str]) -> list[Prediction]:
    """The ``k`` most probable classes of one probability row (C,) as :class:`Prediction` s,
    most probable first; ties → lower class index."""
    return [Prediction(class_names[i], int(i), float(probs[i])) for i in top_k(probs, k)]


def ort_errors() -> tuple[type[BaseException], ...]:
    """onnxruntime's exception classes (they derive from ``Exception`` only), plus what its Python
    layer raises (``RuntimeError``, ``ValueError``)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    found = [c for c in vars(state).values()
             if isinstance(c, type) and issubclass(c, Exception) and c.__module__ == state.__name__]
    return tuple(found) + (RuntimeError, ValueError)


def _check_threads(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise UsageError(f"{name}={value!r}: give an integer >= 1, or None for onnxruntime's default")


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def _onnx_versions(path) -> str:
    """``"model: ONNX IR version 10, opset 18"`` read from the file's top-level protobuf fields
    (ModelProto.ir_version = 1, opset_import = 8) without the onnx package; ``"model: IR version
    unknown"`` if the file is not parseable."""
    try:
        buf = Path(path).read_bytes()
        i, ir, opsets = 0, None, []
        while i < len(buf):
            key, i = _varint(buf, i)
            field, wire = key >> 3, key & 7
            if wire == 0:
                value, i = _varint(buf, i)
                if field == 1:
                    ir = value
            elif wire == 2:
                size, i = _varint(buf, i)
                if field == 8:  # OperatorSetIdProto: domain = 1 (string), version = 2 (int64)
                    sub, j, domain, version = buf[i:i + size], 0, "", None
                    while j < len(sub):
                        k, j = _varint(sub, j)
                        if k & 7 == 0:
                            v, j = _varint(sub, j)
                            if k >> 3 == 2:
                                version = v
                        elif k & 7 == 2:
                            n, j = _varint(sub, j)
                            if k >> 3 == 1:
                                domain = sub[j:j + n].decode("utf-8", "replace")
                            j += n
                        else:
                            raise ValueError("unexpected wire type")
                    if domain in ("", "ai.onnx"):
                        opsets.append(version)
                i += size
            elif wire == 5:
                i += 4
            elif wire == 1:
                i += 8
            else:
                raise ValueError("unexpected wire type")
        return f"model: ONNX IR version {ir}, opset {', '.join(map(str, opsets)) or 'unknown'}"
    except (OSError, ValueError, IndexError):
        return "model: IR version unknown"


class OrtSession:
    """An onnxruntime session on verified execution providers, with ``run(batch) -> logits``.

    Args:
        path: the ``.onnx`` file.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (see :mod:`edgeclf.runtime.providers`).
        providers: explicit provider list (names or ``(name, options)`` tuples), taking precedence
            over ``device``; every one except the CPU provider must end up active.
        intra_op_threads, inter_op_threads: onnxruntime thread counts (``None``: its default).
        graph_optimization: ``"all"`` (default, as applications run it), ``"extended"``,
            ``"basic"`` or ``"off"`` (the graph exactly as written).
        log_severity: onnxruntime's log level, 0 verbose .. 4 fatal; default 3 (errors only, no
            per-node placement warnings on stderr).
        output_name: the output :meth:`run` returns (default ``"logits"`` if the model has it,
            else its first output).
        session_config: extra ``SessionOptions.add_session_config_entry`` keys and values, e.g.
            ``{"session.intra_op.allow_spinning": "0"}``.

    Attributes:
        path: ``path`` as a string.
        providers: active providers, in priority order (``session.get_providers()``).
        device: ``"cuda"`` if a GPU provider is active, else ``"cpu"``.
        device_note: for ``device="auto"`` that ended on the CPU, why; else ``None``.
        input_name, output_name: the tensors :meth:`run` feeds and fetches.
        input_dtype: ``np.float32`` or ``np.float16`` (what the model's input takes).
        fixed_batch: the model's static batch size, or ``None`` if the batch axis is dynamic.

    Raises:
        ArtifactError: onnxruntime cannot load the file (the message names it).
        ProviderError: a requested device/provider is not available or did not activate.
        UsageError: bad ``device``, ``providers``, thread counts, ``graph_optimization``,
            ``log_severity``.

    The underlying ``onnxruntime.InferenceSession`` (:attr:`session`) is shared by threads
    (onnxruntime supports concurrent ``run`` calls) and re-created on first use in a forked child.
    """

    def __init__(self, path: Union[str, os.PathLike], *, device: str = "cpu", providers: Sequence | None = None,
                 intra_op_threads: int | None = None, inter_op_threads: int | None = None,
                 graph_optimization: str = "all", log_severity: int = 3, output_name: str | None = None,
                 session_config: dict[str, str] | None = None):
        import onnxruntime as ort

        _check_threads("intra_op_threads", intra_op_threads)
        _check_threads("inter_op_threads", inter_op_threads)
        if graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            raise UsageError(f"graph_optimization={graph_optimization!r}: use one of"
                             f" {', '.join(GRAPH_OPTIMIZATION_LEVELS)}")
        if isinstance(log_severity, bool) or log_severity not in (0, 1, 2, 3, 4):
            raise UsageError(f"log_severity={log_severity!r}: use 0 (verbose) .. 4 (fatal)")
        self.path = str(path)
        self._settings = (intra_op_threads, inter_op_threads, graph_optimization, log_severity)
        self._session_config = dict(session_config or {})
        request, required, note = _prov.plan_providers(device, providers, ort.get_available_providers())
        self._request = request
        self._session = self._create()
        self._pid = os.getpid()
        _LIVE_SESSIONS.add(self)
        self.providers: list[str] = list(self._session.get_providers())
        _prov.check_active(required, self.providers, self.path)
        if note is None and _prov.CUDA in [_prov.provider_name(p) for p in request] \
                and _prov.CUDA not in self.providers:
            note = "CUDAExecutionProvider did not activate (CUDA/cuDNN libraries not loadable?)"
        # A process forked later re-creates the session on exactly the providers active here.
        self._request = [p for p in request if _prov.provider_name(p) in self.providers] or [_prov.CPU]
        self.device = "cuda" if any(p in _prov.GPU_PROVIDERS for p in self.providers) else "cpu"
        self.device_note = note

        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if not inputs or not outputs:
            raise ArtifactError(f"{self.path}: the model has no inputs or no outputs")
        names = [o.name for o in outputs]
        if output_name is None:
            output_name = "logits" if "logits" in names else names[0]
        elif output_name not in names:
            raise ArtifactError(f"{self.path}: no output {output_name!r}; the model has {names}")
        self.input_name: str = inputs[0].name
        self.output_name: str = output_name
        self.input_dtype = np.float16 if inputs[0].type == "tensor(float16)" else np.float32
        first = list(inputs[0].shape)[0] if inputs[0].shape else None
        self.fixed_batch: int | None = first if isinstance(first, int) and first > 0 else None

    def _create(self):
        import onnxruntime as ort

        intra, inter, level, severity = self._settings
        options = ort.SessionOptions()
        options.log_severity_level = severity
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_OPTIMIZATION_LEVELS[level])
        if intra is not None:
            options.intra_op_num_threads = intra
        if inter is not None:
            options.inter_op_num_threads = inter
        for key, value in self._session_config.items():
            options.add_session_config_entry(key, value)
        try:
            return ort.InferenceSession(self.path, sess_options=options, providers=self._request)
        except ort_errors() as err:
            raise ArtifactError(f"{self.path}: onnxruntime cannot load it ({first_line(err)};"
                                f" {_onnx_versions(self.path)}, onnxruntime {ort.__version__} installed)") from err

    @property
    def session(self):
        """The ``onnxruntime.InferenceSession`` of this process (re-created after a fork)."""
        if self._pid != os.getpid() or self._session is None:
            # No lock: one held by a parent thread at fork time would never be released here. Two
            # threads of the child racing may each build a session; one wins, both are valid.
            if self._session is not None:  # inherited (the fork hook normally did this)
                _set_aside(self._session)
            self._session = self._create()
            self._pid = os.getpid()
            _LIVE_SESSIONS.add(self)
        return self._session

    @property
    def inputs(self) -> list:
        """The model's inputs (onnxruntime ``NodeArg``: ``.name``, ``.shape``, ``.type``)."""
        return self.session.get_inputs()

    @property
    def outputs(self) -> list:
        """The model's outputs (onnxruntime ``NodeArg``)."""
        return self.session.get_outputs()

    @property
    def metadata(self) -> dict[str, str]:
        """The model's ``metadata_props`` (onnxruntime ``custom_metadata_map``)."""
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The model's output for a batch.

        Args:
            batch: (N, ...) array for the model's input, cast to :attr:`input_dtype`; N may be 0.
                A model with a static batch size gets the batch in chunks of that size (the last
                one zero-padded, its padding rows dropped).
        Returns:
            float32 (N, C): the output :attr:`output_name` (e.g. logits).
        """
        x = np.ascontiguousarray(batch, dtype=self.input_dtype)
        n = x.shape[0]
        session = self.session
        step = self.fixed_batch or max(n, 1)
        parts = []
        for start in range(0, n, step):
            chunk = x[start:start + step]
            if self.fixed_batch and len(chunk) < step:  # static batch dimension: pad, then drop
                pad = np.zeros((step - len(chunk), *chunk.shape[1:]), dtype=chunk.dtype)
                out = session.run([self.output_name], {self.input_name: np.concatenate([chunk, pad])})[0]
                out = out[:len(chunk)]
            else:
                out = session.run([self.output_name], {self.input_name: chunk})[0]
            parts.append(np.asarray(out, dtype=np.float32))
        if not parts:
            shape = self.outputs[[o.name for o in self.outputs].index(self.output_name)].shape
            c = shape[1] if len(shape) > 1 and isinstance(shape[1], int) else 0
            return np.zeros((0, c), dtype=np.float32)
        return np.concatenate(parts)

    def __repr__(self) -> str:
        return f"OrtSession({self.path!r}, providers={self.providers})"


# -- fork ------------------------------------------------------------------------------------------

#: Sessions holding an onnxruntime session, so a forked child can set the inherited ones aside.
_LIVE_SESSIONS: "weakref.WeakSet[OrtSession]" = weakref.WeakSet()
_SET_ASIDE: list = []


def _set_aside(session) -> None:
    """Keep an ``InferenceSession`` inherited through ``fork()`` alive for good: freeing it in the
    child waits forever for the parent's onnxruntime threads, running it crashes. One extra
    reference that is never released (``Py_IncRef``) also survives interpreter shutdown."""
    _SET_ASIDE.append(session)
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(session))


def _after_fork_in_child() -> None:
    for holder in list(_LIVE_SESSIONS):
        if holder._session is not None:
            _set_aside(holder._session)
            holder._session = None  # the next use creates this process's own session
    _LIVE_SESSIONS.clear()
    if "onnxruntime" in sys.modules:
        skip_native_exit_handlers()


_EXIT_CODE: list = []


def skip_native_exit_handlers() -> None:
    """End this (forked) process with ``os._exit`` once Python's own shutdown work is done.

    onnxruntime starts a background thread when it is imported; in a forked child its C++ static
    destructors wait forever on that (parent-only) thread's condition variable, so a plain
    ``sys.exit`` hangs (measured with onnxruntime 1.31: ``import onnxruntime; os.fork()`` and a
    child ``sys.exit(3)`` never ends). A Python ``atexit`` hook runs the other ``atexit`` callbacks,
    flushes the standard streams and leaves with the exit code: the one given to ``sys.exit``, 1
    after an uncaught exception, else 0 (a bare ``raise SystemExit(n)`` is not seen: 0). Installed
    automatically in every child forked after onnxruntime was imported.
    """
    import atexit
    import builtins

    real_exit = sys.exit

    def recording_exit(code=0):
        _EXIT_CODE[:] = [code]
        real_exit(code)

    def leave() -> None:
        atexit.unregister(leave)
        atexit._run_exitfuncs()  # everything registered before (logging.shutdown, ...) still runs
        code = _EXIT_CODE[0] if _EXIT_CODE else (1 if getattr(sys, "last_value", None) else 0)
        if code is None:
            code = 0
        elif not isinstance(code, int):  # sys.exit("message"): printed by Python, status 1
            code = 1
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        os._exit(code & 0xFF)

    sys.exit = recording_exit
    builtins.exit = builtins.quit = recording_exit
    atexit.register(leave)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

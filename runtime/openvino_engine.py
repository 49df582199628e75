"""OpenVINO as an alternative engine for the same ONNX files (optional extra ``edgeclf[openvino]``).

``OpenVinoEngine(path).run(batch)`` reads the artifact's ``model.onnx`` (or ``model.int8.onnx``)
with ``openvino.Core().read_model`` and compiles it for the ``CPU`` device; the caller does the
preprocessing and the softmax/top-k, exactly as with onnxruntime, so predictions only differ by the
engine's arithmetic.

Settings and why:

* ``INFERENCE_PRECISION_HINT = f32``: on CPUs with AVX-512 BF16 or AMX, OpenVINO's default is
  bfloat16 for float layers, which moves probabilities by ~1e-2 — far outside the export gate's
  1e-4. An int8 (QDQ) model still runs its quantized layers in int8.
* ``PERFORMANCE_HINT = LATENCY`` (one stream, all threads on one request): the same regime as
  onnxruntime's sequential executor that the runtime and ``bench`` use.
* ``INFERENCE_NUM_THREADS``: the intra-op thread count when given (else OpenVINO's default).

Thread safety: one compiled model is shared; each calling thread gets its own ``InferRequest``.

``openvino`` is imported when an engine is built, never at module import, so neither the base
install nor ``import edgeclf.runtime`` needs it.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from .errors import ArtifactError, UsageError

#: Device OpenVINO compiles for.
DEVICE = "CPU"


def openvino_version() -> str | None:
    """The importable ``openvino`` version, or None when the extra is not installed (never raises)."""
    try:
        import openvino
    except ImportError:
        return None
    return openvino.__version__


def _signature(port) -> tuple[str, list, str]:
    import openvino as ov

    shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
    types = {ov.Type.f32: "tensor(float)", ov.Type.f16: "tensor(float16)"}
    return port.get_any_name(), shape, types.get(port.get_element_type(), str(port.get_element_type()))


class OpenVinoEngine:
    """An ONNX file compiled by OpenVINO for the CPU.

    Args:
        path: an ``.onnx`` file (fp32, fp16 or QDQ int8) with one input and the logits as the
            first output.
        threads: ``INFERENCE_NUM_THREADS`` (``None``: OpenVINO's default, all cores).

    Attributes:
        metadata: the ONNX file's ``metadata_props`` (OpenVINO keeps them in the model's
            ``rt_info["framework"]``), str → str, as onnxruntime's ``custom_metadata_map``.
        inputs, outputs: ``(name, shape, type)`` per port, shape a list with ``None`` for a
            dynamic dimension, type in onnxruntime's spelling (``"tensor(float)"``).
        providers: a description in the style of onnxruntime's providers, e.g.
            ``["OpenVINO-CPU 2026.4.1 (f32)"]``.
        input_name, output_name: the model's input and first output.

    Raises:
        UsageError: the ``openvino`` package is not installed (install ``edgeclf[openvino]``),
            or bad ``threads``.
        ArtifactError: OpenVINO cannot read or compile the file.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        try:
            import openvino as ov
        except ImportError as err:
            raise UsageError("engine='openvino' needs the openvino package: pip install 'edgeclf[openvino]'") from err
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise UsageError(f"threads={threads!r}: give an integer >= 1, or None for OpenVINO's default")
        self.path = str(path)
        config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = str(threads)
        core = ov.Core()
        try:
            model = core.read_model(self.path)
            self.compiled = core.compile_model(model, DEVICE, config)
        except RuntimeError as err:
            raise ArtifactError(f"{self.path}: OpenVINO cannot load it ({str(err).strip().splitlines()[0]})") from err
        rt_info = model.get_rt_info()
        framework = rt_info["framework"] if "framework" in rt_info else {}
        self.metadata = {str(k): str(v.value) for k, v in framework.items()}
        self.inputs = [_signature(port) for port in self.compiled.inputs]
        self.outputs = [_signature(port) for port in self.compiled.outputs]
        self.input_name = self.compiled.input(0).get_any_name()
        self.output_name = self.compiled.output(0).get_any_name()
        self.threads = int(self.compiled.get_property("INFERENCE_NUM_THREADS"))
        self.providers = [f"OpenVINO-{DEVICE} {ov.__version__.split('-')[0]} (f32)"]
        self._local = threading.local()

    def _request(self):
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return request

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits of a preprocessed batch.

        Args:
            batch: float32 (N, 3, H, W).
        Returns:
            float32 logits (N, C), a fresh array (safe to keep).
        """
        request = self._request()
        request.infer({0: np.ascontiguousarray(batch, dtype=np.float32)})
        return np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)

"""Benchmark backends: one way each of running an exported model on one device.

========================  ====================================================================
backend                   what runs
========================  ====================================================================
``eager``                 the checkpoint's ``torch.nn.Module``, fp32, CPU, ``torch.inference_mode``
``eager-cuda``            the same on CUDA (fp32)
``torchscript``           ``model.torchscript.pt`` via ``torch.jit.load``, CPU
``torchscript-cuda``      the same on CUDA
``onnx-cpu``              ``model.onnx`` fp32, onnxruntime ``CPUExecutionProvider``
``onnx-cuda``             ``model.onnx`` fp32, ``CUDAExecutionProvider`` with IO binding
``onnx-int8``             ``model.int8.onnx`` (static QDQ), ``CPUExecutionProvider``
``onnx-fp16``             ``model.fp16.onnx``, ``CUDAExecutionProvider`` with IO binding
``openvino-cpu``          ``model.onnx`` fp32 through OpenVINO on the CPU (f32 precision hint)
``openvino-int8``         ``model.int8.onnx`` through OpenVINO on the CPU
========================  ====================================================================

The OpenVINO backends need the ``openvino`` extra (skipped with the reason otherwise); they run
the same ONNX files through :class:`runtime.openvino_engine.OpenVinoEngine`, as
``Predictor(..., engine="openvino")`` does.

Every backend reports ``threads_used``: the intra-op thread count its framework really runs with,
read back from it (``torch.get_num_threads()``, the session options, OpenVINO's
``INFERENCE_NUM_THREADS``), not the count that was asked for.

GPU backends keep input and output on the device (torch tensors / onnxruntime ``OrtValue`` with
``IOBinding``) and synchronise after every call, so a timed call is one host→device-free,
fully finished inference. A backend whose device is not really there raises :class:`Skip`
with the reason (e.g. "CUDA provider not active: …") — onnxruntime-gpu lists the CUDA provider
even when it cannot load it, so the *active* providers (``session.get_providers()``) are checked.

ONNX sessions come from the runtime's session factory (:class:`edgeclf.runtime.inference.OrtSession`,
what ``Predictor`` runs); the torch backends' accuracy pass uses
:func:`edgeclf.train.inference.eager_logits`. torch is imported only by the torch backends, inside
their methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from edgeclf.runtime.artifact import FORMAT_FILES

BACKENDS = ("eager", "eager-cuda", "torchscript", "torchscript-cuda",
            "onnx-cpu", "onnx-cuda", "onnx-int8", "onnx-fp16", "openvino-cpu", "openvino-int8")
#: Backends timed on the CPU: they all get the same intra-op thread count.
CPU_BACKENDS = ("eager", "torchscript", "onnx-cpu", "onnx-int8", "openvino-cpu", "openvino-int8")
#: Backend → the artifact format (``FORMAT_FILES`` key) it runs.
BACKEND_FORMATS = {"eager": None, "eager-cuda": None, "torchscript": "torchscript", "torchscript-cuda": "torchscript",
                   "onnx-cpu": "onnx", "onnx-cuda": "onnx", "onnx-int8": "onnx-int8", "onnx-fp16": "onnx-fp16",
                   "openvino-cpu": "onnx", "openvino-int8": "onnx-int8"}


class Skip(Exception):
    """This backend cannot run here; the message says why (shown as "skipped: …")."""


class Backend:
    """Common interface. ``load()`` once, then ``prepare(x)`` → (run, sync) closures for timing,
    and ``logits(x)`` for accuracy.

    Arrays: ``x`` float32 (N, 3, H, W); logits float32 (N, C).
    """

    name: str = ""
    device: str = "cpu"

    def load(self) -> None:
        raise NotImplementedError

    @property
    def providers(self) -> list[str]:
        return []

    def prepare(self, x: np.ndarray) -> tuple[Callable[[], object], Callable[[], object] | None]:
        raise NotImplementedError

    def logits(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def peak_gpu_mem_mib(self) -> float | None:
        return None

    @property
    def threads_used(self) -> int | None:
        """Intra-op threads the framework really uses (read back from it), if it says."""
        return None


class TorchBackend(Backend):
    """``eager`` / ``torchscript`` (and their ``-cuda`` variants)."""

    def __init__(self, name: str, artifact_dir: Path, checkpoint: Path | None, threads: int, gpu: int = 0):
        self.name = name
        self.device = "cuda" if name.endswith("-cuda") else "cpu"
        self.torch_device = f"cuda:{gpu}" if self.device == "cuda" else "cpu"
        self.gpu = gpu
        self.kind = name.split("-")[0]
        self.artifact_dir, self.checkpoint, self.threads = artifact_dir, checkpoint, threads

    def load(self) -> None:
        import torch

        if self.device == "cuda" and not torch.cuda.is_available():
            raise Skip("CUDA not available to torch (torch.cuda.is_available() is False)")
        if self.device == "cuda" and self.gpu >= torch.cuda.device_count():
            raise Skip(f"no GPU cuda:{self.gpu} (torch sees {torch.cuda.device_count()} CUDA device(s))")
        if self.kind == "eager":
            if self.checkpoint is None or not Path(self.checkpoint).is_file():
                raise Skip(f"no checkpoint for the eager backend (looked for {self.checkpoint}); pass --checkpoint")
            from edgeclf.train.checkpoint import load_checkpoint, model_from_checkpoint

            model = model_from_checkpoint(load_checkpoint(self.checkpoint))
        else:
            path = self.artifact_dir / FORMAT_FILES["torchscript"]
            if not path.is_file():
                raise Skip(f"{path.name} not in the artifact (export with --formats torchscript,onnx)")
            model = torch.jit.load(str(path), map_location="cpu")
        self.model = model.eval().to(self.torch_device)
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats(self.torch_device)

    @property
    def providers(self) -> list[str]:
        return [f"torch-{self.torch_device}"]

    @property
    def threads_used(self) -> int | None:
        import torch

        return torch.get_num_threads()

    def _sync(self):
        import torch

        return (lambda: torch.cuda.synchronize(self.torch_device)) if self.device == "cuda" else None

    def prepare(self, x):
        import torch

        xt = torch.from_numpy(np.ascontiguousarray(x)).to(self.torch_device)

        def run():
            with torch.inference_mode():
                return self.model(xt)

        return run, self._sync()

    def logits(self, x):
        from edgeclf.train.inference import eager_logits

        return eager_logits(self.model, x, self.torch_device)

    def peak_gpu_mem_mib(self):
        import torch

        return torch.cuda.max_memory_allocated(self.torch_device) / 2**20 if self.device == "cuda" else None


class OnnxBackend(Backend):
    """``onnx-cpu``, ``onnx-cuda``, ``onnx-int8``, ``onnx-fp16`` through onnxruntime."""

    FILES = {"onnx-cpu": "onnx", "onnx-cuda": "onnx", "onnx-int8": "onnx-int8", "onnx-fp16": "onnx-fp16"}

    def __init__(self, name: str, artifact_dir: Path, threads: int, gpu: int = 0):
        self.name = name
        self.gpu = gpu
        self.device = "cuda" if name in ("onnx-cuda", "onnx-fp16") else "cpu"
        self.path = artifact_dir / FORMAT_FILES[self.FILES[name]]
        self.threads = threads

    def load(self) -> None:
        from edgeclf.runtime.errors import ProviderError
        from edgeclf.runtime.inference import OrtSession

        if not self.path.is_file():
            flag = {"onnx-int8": "--int8", "onnx-fp16": "--fp16"}.get(self.name, "")
            raise Skip(f"{self.path.name} not in the artifact" + (f" (export with {flag})" if flag else ""))
        try:
            # the runtime's session factory: the same options and provider checks Predictor uses
            device = f"cuda:{self.gpu}" if self.device == "cuda" else "cpu"
            self.engine = OrtSession(self.path, device=device, intra_op_threads=self.threads,
                                     inter_op_threads=1, graph_optimization="all")
        except ProviderError as err:
            reason = str(err).replace("; use --device cpu", "")  # that hint is predict's, not bench's
            raise Skip(f"CUDA provider not active: {reason}") from err
        self.input_name = self.engine.input_name
        self.input_dtype = self.engine.input_dtype
        self.output_name = self.engine.output_name

    @property
    def providers(self) -> list[str]:
        return list(self.engine.providers)

    @property
    def threads_used(self) -> int | None:
        return self.engine.session.get_session_options().intra_op_num_threads

    def prepare(self, x):
        import onnxruntime as ort

        x = np.ascontiguousarray(x, dtype=self.input_dtype)
        session = self.engine.session
        if self.device == "cpu":
            feed = {self.input_name: x}
            return (lambda: session.run([self.output_name], feed)), None
        binding = session.io_binding()
        x_dev = ort.OrtValue.ortvalue_from_numpy(x, "cuda", self.gpu)
        binding.bind_ortvalue_input(self.input_name, x_dev)
        binding.bind_output(self.output_name, "cuda", self.gpu)
        self._keep = x_dev  # the device buffer must outlive the binding

        def run():
            session.run_with_iobinding(binding)

        return run, binding.synchronize_outputs

    def logits(self, x):
        return self.engine.run(x)

    def peak_gpu_mem_mib(self):
        if self.device != "cuda":
            return None
        from .environment import gpu_process_memory_mib

        return gpu_process_memory_mib()


class OpenVinoBackend(Backend):
    """``openvino-cpu`` / ``openvino-int8``: the artifact's ONNX files compiled by OpenVINO for the CPU."""

    def __init__(self, name: str, artifact_dir: Path, threads: int):
        self.name = name
        self.path = artifact_dir / FORMAT_FILES[BACKEND_FORMATS[name]]
        self.threads = threads

    def load(self) -> None:
        from edgeclf.runtime.openvino_engine import OpenVinoEngine, openvino_version

        if openvino_version() is None:
            raise Skip("openvino not installed (pip install 'edgeclf[openvino]')")
        if not self.path.is_file():
            raise Skip(f"{self.path.name} not in the artifact" + (" (export with --int8)" if "int8" in self.name else ""))
        self.engine = OpenVinoEngine(self.path, threads=self.threads)

    @property
    def providers(self) -> list[str]:
        return list(self.engine.providers)

    @property
    def threads_used(self) -> int | None:
        return self.engine.threads

    def prepare(self, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        request = self.engine.compiled.create_infer_request()
        feed = {0: x}
        return (lambda: request.infer(feed)), None

    def logits(self, x):
        return self.engine.run(x)


def make_backend(name: str, artifact_dir: Path, checkpoint: Path | None, threads: int, gpu: int = 0) -> Backend:
    """Backend object for ``name`` (one of :data:`BACKENDS`); GPU backends run on GPU number ``gpu``.
    ``ValueError`` lists the valid names."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    if name.startswith("openvino"):
        return OpenVinoBackend(name, Path(artifact_dir), threads)
    if name.startswith("onnx"):
        return OnnxBackend(name, Path(artifact_dir), threads, gpu)
    return TorchBackend(name, Path(artifact_dir), checkpoint, threads, gpu)

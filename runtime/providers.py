"""Execution provider selection: which onnxruntime providers a session asks for, and proof it got them.

onnxruntime-gpu lists ``CUDAExecutionProvider`` in ``get_available_providers()`` whether or not a
GPU, a driver and the CUDA/cuDNN libraries are present; when any of them is missing, it logs an
error and silently runs the session on the CPU. So the truth is only in the session's
``get_providers()`` after it is created, and that is what :func:`check_active` compares against.

Device rule (``Predictor(device=...)``):

=========  ==========================================================================
``cpu``    ``["CPUExecutionProvider"]``
``cuda``   ``["CUDAExecutionProvider", "CPUExecutionProvider"]``; :class:`ProviderError` unless
           the onnxruntime build has the CUDA provider, the driver reports a CUDA device, and
           the created session lists ``CUDAExecutionProvider`` as active. The CPU provider stays
           in the list on purpose: the CUDA provider itself places a few shape-computation nodes
           on the CPU, so ``session.disable_cpu_ep_fallback`` would refuse most real models.
``cuda:N`` like ``cuda`` on GPU number N (``("CUDAExecutionProvider", {"device_id": N})``);
           :class:`ProviderError` unless the driver reports more than N devices.
``auto``   like ``cuda`` when the build has the CUDA provider and the driver reports a device
           (checked without touching onnxruntime, so CPU-only machines get no CUDA error
           logs); if the session then does not activate CUDA, the CPU session is kept and the
           reason is recorded. Otherwise ``cpu``.
=========  ==========================================================================

TensorRT is never picked automatically (engine building takes minutes); ask for it with
``providers=["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]``.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Sequence, Union

from .errors import ProviderError, UsageError

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")  # and "cuda:N" (see parse_device)
#: Providers that mean "runs on an NVIDIA GPU".
GPU_PROVIDERS = (CUDA, TENSORRT)

ProviderSpec = Union[str, tuple]  # "NameExecutionProvider" or ("Name", {options})


def cuda_device_count() -> int:
    """Number of CUDA devices the NVIDIA driver reports (honours ``CUDA_VISIBLE_DEVICES``).

    Asks the driver library (``libcuda.so.1`` / ``nvcuda.dll``) directly through ctypes, so it
    needs neither torch nor onnxruntime and logs nothing. Returns 0 when there is no driver, no
    device, or any driver call fails.
    """
    names = ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so", "libcuda.dylib")
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            if lib.cuInit(0) != 0:
                return 0
            count = ctypes.c_int(0)
            if lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
                return 0
            return int(count.value)
        except AttributeError:  # not a real driver library
            return 0
    return 0


def provider_name(spec: ProviderSpec) -> str:
    """The provider name of ``"Name"`` or ``("Name", {options})``."""
    return spec[0] if isinstance(spec, tuple) else spec


def parse_device(device: str) -> tuple[str, int | None]:
    """``"auto"|"cpu"|"cuda"|"cuda:N"`` → ``(kind, N or None)``, e.g. ``"cuda:1"`` → ``("cuda", 1)``.

    Raises:
        UsageError: anything else (the message gives the syntax).
    """
    if isinstance(device, str):
        if device in DEVICES:
            return device, None
        kind, _, index = device.partition(":")
        if kind == "cuda" and index.isdigit():
            return "cuda", int(index)
    raise UsageError(f"device={device!r}: use auto, cpu, cuda or cuda:N (N = GPU number, e.g. cuda:0)")


def plan_providers(device: str, providers: Sequence[ProviderSpec] | None,
                   available: Sequence[str]) -> tuple[list[ProviderSpec], list[str], str | None]:
    """Decide the provider list to request for a session.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (ignored when ``providers`` is given).
        providers: an explicit onnxruntime provider list (names or ``(name, options)`` tuples),
            or ``None`` to derive it from ``device``.
        available: ``onnxruntime.get_available_providers()``.
    Returns:
        ``(request, required, note)``: the list to pass to ``InferenceSession``; the provider
        names that must be active afterwards (:func:`check_active`); and, for ``auto`` choosing
        the CPU, why (else ``None``).
    Raises:
        UsageError: unknown ``device``, an empty or malformed ``providers`` list.
        ProviderError: ``device="cuda"`` (or a requested provider) that this onnxruntime build or
            this machine cannot provide.
    """
    device, index = parse_device(device)
    if providers is not None:
        request = list(providers)
        if not request or not all(isinstance(provider_name(p), str) for p in request):
            raise UsageError(f"providers={providers!r}: give a non-empty list of provider names"
                             " (e.g. ['CUDAExecutionProvider', 'CPUExecutionProvider'])")
        missing = [provider_name(p) for p in request if provider_name(p) not in available]
        if missing:
            raise ProviderError(f"providers {missing} are not in this onnxruntime build"
                                f" (available: {', '.join(available)})")
        return request, [provider_name(p) for p in request if provider_name(p) != CPU], None
    if device == "cpu":
        return [CPU], [], None
    if CUDA not in available:
        if device == "cuda":
            raise ProviderError(f"device='cuda': this onnxruntime build has no {CUDA} (available:"
                                f" {', '.join(available)}); install onnxruntime-gpu")
        return [CPU], [], f"onnxruntime build without {CUDA}"
    n = cuda_device_count()
    if n == 0:
        if device == "cuda":
            raise ProviderError("device='cuda': the NVIDIA driver reports no CUDA device (no driver"
                                " library, no GPU, or CUDA_VISIBLE_DEVICES hides them); use --device cpu")
        return [CPU], [], "no CUDA device reported by the driver"
    if index is None:
        return [CUDA, CPU], ([CUDA] if device == "cuda" else []), None
    if index >= n:
        raise ProviderError(f"device='cuda:{index}': the NVIDIA driver reports {n} CUDA device(s),"
                            f" numbered 0..{n - 1} (CUDA_VISIBLE_DEVICES renumbers them)")
    return [(CUDA, {"device_id": index}), CPU], [CUDA], None


def check_active(required: Sequence[str], active: Sequence[str], model: str) -> None:
    """Raise :class:`ProviderError` unless every provider in ``required`` is in ``active``.

    Args:
        required: provider names that were asked for explicitly.
        active: ``session.get_providers()`` of the created session.
        model: the model path, for the message.
    """
    missing = [p for p in required if p not in active]
    if missing:
        hint = (" (CUDA provider libraries or cuDNN not loadable: onnxruntime-gpu needs the CUDA"
                " and cuDNN versions it was built for; see onnxruntime's log above)"
                if CUDA in missing else "")
        raise ProviderError(f"{model}: requested {', '.join(missing)} is not active, the session"
                            f" runs on {', '.join(active)}{hint}")

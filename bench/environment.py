"""What machine and software a benchmark ran on, recorded beside every result.

Recorded (after onnxruntime's ``benchmark_helper.get_ort_environment_variables`` habit): CPU
model, logical and physical core counts, GPU name and driver (``nvidia-smi`` when present),
Python/numpy/onnxruntime/torch versions, available execution providers, and the thread-related
environment variables that change CPU timings.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata

#: Environment variables that change CPU/GPU timings; recorded with every benchmark.
TIMING_ENV_VARS = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE",
    "ORT_DISABLE_ALL_OPTIMIZATION", "CUDA_VISIBLE_DEVICES", "CUDA_LAUNCH_BLOCKING",
    "TORCH_CUDNN_V8_API_ENABLED", "KMP_AFFINITY", "GOMP_CPU_AFFINITY",
)


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux) or ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fp:
            for line in fp:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


#: /proc/cpuinfo flags that decide int8 (and bf16) speed: AVX2 (``VPMADDUBSW``), AVX-512,
#: VNNI (``VPDPBUSD``: uint8 x int8 dot products, 512-bit or the 256-bit AVX-VNNI), AMX tiles.
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16",
             "asimddp", "i8mm")


def cpu_flags() -> dict[str, bool]:
    """Which of :data:`CPU_FLAGS` this CPU reports (Linux /proc/cpuinfo ``flags``, or ``Features`` on
    ARM: ``asimddp`` = SDOT, ``i8mm`` = SMMLA); empty where /proc/cpuinfo is not readable."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fp:
            for line in fp:
                if line.startswith(("flags", "Features")):
                    present = set(line.split(":", 1)[1].split())
                    return {flag: flag in present for flag in CPU_FLAGS}
    except OSError:
        pass
    return {}


def physical_cores() -> int:
    """Physical CPU cores available to this process (hyper-threads counted once).

    Linux: distinct (physical id, core id) pairs in /proc/cpuinfo among the CPUs in this process's
    affinity mask; elsewhere (or if that fails) ``os.cpu_count()``.
    """
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        allowed = os.sched_getaffinity(0)
        cores, proc, phys, core = set(), None, "0", None
        with open("/proc/cpuinfo", encoding="utf-8") as fp:
            for line in fp.read().split("\n") + [""]:
                if line.startswith("processor"):
                    proc = int(line.split(":")[1])
                elif line.startswith("physical id"):
                    phys = line.split(":")[1].strip()
                elif line.startswith("core id"):
                    core = line.split(":")[1].strip()
                elif not line.strip() and proc is not None:
                    if proc in allowed:
                        cores.add((phys, core if core is not None else proc))
                    proc, phys, core = None, "0", None
        return max(1, min(len(cores), logical)) if cores else logical
    except (OSError, AttributeError, ValueError):
        return logical


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def gpu_info() -> list[dict]:
    """One dict per NVIDIA GPU (``name``, ``driver_version``, ``memory_total_mib``) via nvidia-smi;
    empty when there is none."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, driver, mem = (s.strip() for s in line.split(","))
        gpus.append({"name": name, "driver_version": driver, "memory_total_mib": float(mem)})
    return gpus


def collect_environment(threads: int | None = None, worker_env: dict[str, str] | None = None) -> dict:
    """Everything about this machine that a reader needs to judge a benchmark number.

    Args:
        threads: the intra-op thread count every CPU backend was given.
        worker_env: variables the runner set for its workers (e.g. ``OMP_NUM_THREADS``); ``env``
            then shows what the workers ran with, and ``caller_env`` what the calling shell had
            where it differs. Each backend's own report (``backends[name]["worker"]``) is the
            authoritative record.

    Imports onnxruntime (for its providers); does not import torch (its version is read from
    package metadata).
    """
    import numpy as np
    import onnxruntime as ort

    caller = {k: os.environ[k] for k in TIMING_ENV_VARS if k in os.environ}
    return {
        "cpu_model": cpu_model(),
        "cpu_logical_cores": os.cpu_count(),
        "cpu_physical_cores": physical_cores(),
        "gpus": gpu_info(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {
            "numpy": np.__version__,
            "onnxruntime": ort.__version__,
            "onnxruntime_package": "onnxruntime-gpu" if _version("onnxruntime-gpu") else "onnxruntime",
            "torch": _version("torch"),
            "torchvision": _version("torchvision"),
            "onnx": _version("onnx"),
            "pillow": _version("pillow"),
            "edgeclf": _version("edgeclf"),
            "openvino": _version("openvino"),
        },
        "onnxruntime_available_providers": ort.get_available_providers(),
        "cpu_flags": cpu_flags(),
        "threads": threads,
        "env": {k: v for k, v in {**caller, **(worker_env or {})}.items() if k in TIMING_ENV_VARS},
        "caller_env": {k: v for k, v in caller.items() if (worker_env or {}).get(k, v) != v},
    }


def gpu_process_memory_mib(pid: int | None = None) -> float | None:
    """GPU memory in use by process ``pid`` (default: this one) per nvidia-smi, MiB; None if unknown.

    Used for onnxruntime, whose CUDA arena is invisible to torch's allocator statistics; sampled
    after the timed loop, so it is the arena's high-water size rather than a true peak.
    """
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    pid = os.getpid() if pid is None else pid
    try:
        out = subprocess.run([exe, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.strip().splitlines():
        parts = [s.strip() for s in line.split(",")]
        if len(parts) == 2 and parts[0] == str(pid):
            try:
                return float(parts[1])
            except ValueError:
                return None
    return None

"""edgeclf export: checkpoint → TorchScript / ONNX artifacts behind parity gates.

``from edgeclf.export import export_checkpoint`` is the API; ``edgeclf export`` is a thin CLI over it.
torch, onnx and onnxruntime are imported inside the functions that need them.
"""

from .api import FORMATS, ExportOptions, export_checkpoint, parse_formats
from .errors import ExportError, GateError

__all__ = ["FORMATS", "ExportError", "ExportOptions", "GateError", "export_checkpoint", "parse_formats"]

"""edgeclf export: checkpoint → TorchScript / ONNX artifacts behind parity gates (issue 4)."""

"""edgeclf bench: latency/throughput/accuracy of every format and provider, and the end-to-end demo.

``SAMPLE_DATA`` is the small Caltech 101 sample shipped with the package (see its LICENSE.md).
"""

from pathlib import Path

SAMPLE_DATA = Path(__file__).resolve().parent / "data" / "caltech101_sample"

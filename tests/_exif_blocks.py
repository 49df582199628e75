"""Hand-built EXIF blocks for tests: Orientation=6 plus a GPS IFD whose tags have the wrong types
(Pillow's ImageOps.exif_transpose raises TypeError/AttributeError on them)."""

import io, struct
from PIL import Image

def ifd(entries, next_off=0, base=8):
    """entries: (tag, type, count, value_bytes<=4 or extra)."""
    out = struct.pack("<H", len(entries))
    extra = b""
    extra_base = base + 2 + 12 * len(entries) + 4
    for tag, typ, count, val in entries:
        if len(val) <= 4:
            out += struct.pack("<HHI", tag, typ, count) + val.ljust(4, b"\0")
        else:
            out += struct.pack("<HHI", tag, typ, count) + struct.pack("<I", extra_base + len(extra))
            extra += val
    return out + struct.pack("<I", next_off) + extra

def exif_with_gps(gps_entries):
    # IFD0 at 8: Orientation=6, GPS pointer -> gps ifd after ifd0
    n0 = 2
    ifd0_len = 2 + 12 * n0 + 4
    gps_off = 8 + ifd0_len
    ifd0 = ifd([(0x0112, 3, 1, struct.pack("<H", 6)), (0x8825, 4, 1, struct.pack("<I", gps_off))])
    gps = ifd(gps_entries, base=gps_off)
    return b"Exif\0\0" + b"II*\0" + struct.pack("<I", 8) + ifd0 + gps

def jpeg(exif: bytes | None) -> bytes:
    """A 32 x 16 JPEG (left half red, right half blue) with the given raw EXIF block (or none)."""
    img = Image.new("RGB", (32, 16), (200, 10, 10))
    img.paste((10, 10, 200), (16, 0, 32, 16))
    b = io.BytesIO()
    img.save(b, "JPEG", **({"exif": exif} if exif else {}))
    return b.getvalue()

#: GPS IFD entries (tag, TIFF type, count, value bytes) of the wrong type for their tag.
WRONG_GPS = {
 "lat_ascii": [(2, 2, 4, b"abc\0")],
 "lat_short": [(2, 3, 1, struct.pack("<H", 5))],
 "ver_ascii": [(0, 2, 4, b"abc\0")],
 "ref_rational": [(1, 5, 1, struct.pack("<II", 1, 2))],
 "lat_long3": [(2, 4, 3, struct.pack("<III", 1, 2, 3))],
 "ts_ascii": [(7, 2, 8, b"1234567\0")],
 "lat_undef": [(2, 7, 24, bytes(24))],
}

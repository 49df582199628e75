"""runtime.image.load_image: every input kind, the mode zoo, EXIF orientation and bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFile

from _bad_inputs import corrupt_png_crc, huge_png, jpeg_bytes, noise_rgb, png_bytes
from edgeclf.runtime.errors import ImageNotFoundError, ImageTooLargeError, InvalidImageError
from edgeclf.runtime.image import DEFAULT_MAX_PIXELS, expand_inputs, is_image_filename, load_image


def px(img: Image.Image) -> np.ndarray:
    assert img.mode == "RGB"
    return np.asarray(img)


# -- input kinds -----------------------------------------------------------------------------------

def test_every_input_kind_gives_the_same_pixels(tmp_path):
    arr = noise_rgb(1)
    data = png_bytes(arr)
    path = tmp_path / "x.png"
    path.write_bytes(data)
    with open(path, "rb") as fp:
        from_file_object = load_image(fp)
    for img in (load_image(path), load_image(str(path)), load_image(data), load_image(bytearray(data)),
                load_image(io.BytesIO(data)), from_file_object, load_image(Image.fromarray(arr)),
                load_image(arr)):
        np.testing.assert_array_equal(px(img), arr)
    grey = arr[:, :, 0]
    np.testing.assert_array_equal(px(load_image(grey)), np.repeat(grey[:, :, None], 3, axis=2))


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 4), np.uint8),
                                 np.zeros((4,), np.uint8)])
def test_arrays_must_be_uint8_rgb(bad):
    with pytest.raises(InvalidImageError, match=r"uint8 of shape \(H, W, 3\)"):
        load_image(bad)


def test_text_mode_file_object_and_unknown_type(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("hello")
    with open(path) as fp, pytest.raises(InvalidImageError, match="binary mode"):
        load_image(fp)
    with pytest.raises(InvalidImageError, match="unsupported input type int"):
        load_image(42)


# -- the mode rule -------------------------------------------------------------------------------

def over_white(value, alpha):
    """Alpha-composite over opaque white, as a float: the documented rule."""
    return (value * alpha + 255 * (255 - alpha)) / 255


def test_mode_L_and_1():
    grey = np.array([[0, 7, 128, 255]], np.uint8)
    np.testing.assert_array_equal(px(load_image(Image.fromarray(grey, "L"))), np.stack([grey] * 3, axis=2))
    one = Image.fromarray(np.array([[0, 255]], np.uint8)).convert("1")
    np.testing.assert_array_equal(px(load_image(one))[0], [[0, 0, 0], [255, 255, 255]])


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_over_white(mode):
    values = np.array([10, 200, 90, 90], np.uint8)
    alphas = np.array([0, 255, 128, 64], np.uint8)
    if mode == "RGBA":
        arr = np.stack([values, values // 2, 255 - values, alphas], axis=1)[None]  # (1, 4, 4)
    else:
        arr = np.stack([values, alphas], axis=1)[None]
    for img in (Image.fromarray(arr, mode), Image.open(io.BytesIO(png_bytes_of(Image.fromarray(arr, mode))))):
        assert img.mode == mode
        got = px(load_image(img))[0].astype(int)  # (4, 3)
        channels = [values, values // 2, 255 - values] if mode == "RGBA" else [values] * 3
        for c, v in enumerate(channels):
            expected = over_white(v.astype(float), alphas.astype(float))
            assert got[0, c] == 255  # fully transparent → white, exactly
            assert got[1, c] == v[1]  # opaque → unchanged, exactly
            assert np.abs(got[:, c] - expected).max() <= 1.0  # Pillow's integer rounding


def png_bytes_of(img: Image.Image, **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **save)
    return buf.getvalue()


def test_palette_with_transparency():
    pal = Image.new("P", (3, 1))
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    pal.putdata([0, 1, 2])
    pal.info["transparency"] = 1  # index 1 (green) is transparent
    decoded = Image.open(io.BytesIO(png_bytes_of(pal, transparency=1)))
    assert decoded.mode == "P" and "transparency" in decoded.info
    for img in (pal, decoded):
        np.testing.assert_array_equal(px(load_image(img))[0], [[255, 0, 0], [255, 255, 255], [0, 0, 255]])
    opaque = Image.open(io.BytesIO(png_bytes_of(pal.copy())))  # no transparency saved: palette colours
    opaque.info.pop("transparency", None)
    np.testing.assert_array_equal(px(load_image(opaque))[0], [[255, 0, 0], [0, 255, 0], [0, 0, 255]])


def test_cmyk_uses_pillows_naive_conversion():
    cmyk = np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [0, 0, 0, 255], [100, 50, 200, 30]]], np.uint8)
    img = Image.fromarray(cmyk, "CMYK")

    def muldiv255(a, b):  # Pillow's MULDIV255
        t = a * b + 128
        return ((t >> 8) + t) >> 8

    got = px(load_image(img))[0]
    for (c, m, y, k), rgb in zip(cmyk[0].astype(int), got):
        nk = 255 - k
        assert list(rgb) == [nk - muldiv255(c, nk), nk - muldiv255(m, nk), nk - muldiv255(y, nk)]
    buf = io.BytesIO()
    img.save(buf, "TIFF")  # a CMYK file decodes the same way
    np.testing.assert_array_equal(px(load_image(buf.getvalue())), got[None])


def test_16_bit_grey_is_shifted_to_8_bit():
    a16 = np.array([[0, 0x1234, 0xFFFF, 300]], np.uint16)
    expected = np.array([0, 0x12, 0xFF, 1], np.uint8)
    img = Image.fromarray(a16)
    assert img.mode == "I;16"
    from_png = Image.open(io.BytesIO(png_bytes_of(img)))
    assert from_png.mode.startswith("I")
    for source in (img, from_png, img.convert("I")):
        np.testing.assert_array_equal(px(load_image(source))[0], np.stack([expected] * 3, axis=1))
    i32 = Image.fromarray(np.array([[-5, 70000]], np.int32), "I")  # clipped to [0, 65535] first
    np.testing.assert_array_equal(px(load_image(i32))[0], [[0, 0, 0], [255, 255, 255]])


def test_float_mode_is_clipped_and_rounded():
    f = Image.fromarray(np.array([[-3.0, 12.4, 12.6, 300.0]], np.float32), "F")
    np.testing.assert_array_equal(px(load_image(f))[0, :, 0], [0, 12, 13, 255])


def test_animated_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 6), color) for color in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    opened = Image.open(path)
    assert opened.n_frames == 3
    opened.seek(2)  # even if the caller left it on another frame
    for source in (path, opened):
        arr = px(load_image(source))
        assert arr.shape == (6, 8, 3)
        np.testing.assert_array_equal(arr[0, 0], [255, 0, 0])


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_orientation_6_rotates_clockwise(fmt, tmp_path):
    arr = np.zeros((40, 60, 3), np.uint8)  # landscape, a red top-left block
    arr[:10, :10] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / f"rot.{fmt.lower()}"
    Image.fromarray(arr).save(path, fmt, exif=exif, **({"quality": 100} if fmt == "JPEG" else {}))
    out = px(load_image(path))
    assert out.shape == (60, 40, 3)  # portrait after rotation
    with Image.open(path) as raw:  # the stored pixels, orientation not applied
        stored = np.asarray(raw.convert("RGB"))
    if fmt == "PNG":
        np.testing.assert_array_equal(stored, arr)
    np.testing.assert_array_equal(out, np.rot90(stored, k=-1))  # clockwise, exactly
    assert out[2, -3, 0] > 200 and out[-3, 2, 0] < 50  # the red block moved to the top-right
    np.testing.assert_array_equal(px(load_image(Image.open(path))), out)  # PIL input: same rule


# -- bad input -----------------------------------------------------------------------------------

def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(InvalidImageError, match=r"empty\.jpg: empty file \(zero bytes\)"):
        load_image(path)
    with pytest.raises(InvalidImageError, match="empty"):
        load_image(b"")


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are my holiday notes, not a photo\n")
    with pytest.raises(InvalidImageError, match=r"notes\.jpg: is text, not an image"):
        load_image(path)
    path.write_text("<!DOCTYPE html><html><body>404</body></html>")
    with pytest.raises(InvalidImageError, match=r"notes\.jpg: is HTML/XML text"):
        load_image(path)


def test_jpeg_truncated_to_half(tmp_path):
    data = jpeg_bytes(noise_rgb(3, (64, 64)))
    path = tmp_path / "half.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidImageError, match=r"half\.jpg: cannot decode image: image file is truncated"):
        load_image(path)


def test_jpeg_truncated_even_if_another_library_allows_truncated_images(tmp_path, monkeypatch):
    """Documented limitation: Pillow's global LOAD_TRUNCATED_IMAGES, if some library sets it,
    makes truncated JPEGs decode (grey-filled); we do not override a process-wide setting."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = jpeg_bytes(noise_rgb(3, (64, 64)))
    assert load_image(data[: len(data) // 2]).size == (64, 64)


@pytest.mark.parametrize("chunk, message", [
    (b"IDAT", r"cannot decode image: broken PNG file \(bad header checksum in b'IDAT'\)"),
    (b"IHDR", r"starts like a PNG file but its header is corrupt"),
])
def test_png_with_bad_crc(tmp_path, chunk, message):
    good = png_bytes(noise_rgb(4))
    load_image(good)  # the intact file decodes
    path = tmp_path / "bad_crc.png"
    path.write_bytes(corrupt_png_crc(good, chunk))
    with pytest.raises(InvalidImageError, match=r"bad_crc\.png: " + message):
        load_image(path)


def test_30000_square_png_is_refused_without_decoding(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    path.write_bytes(huge_png(30_000, 30_000))  # ~0.9 MB on disk, 900 Mpx
    assert path.stat().st_size < 2_000_000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # Pillow's guard off: it opens...
    with Image.open(path) as probe:
        assert (probe.format, probe.size, probe.mode) == ("PNG", (30_000, 30_000), "L")

    def no_decoding(self, *a, **k):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    # ...and ours refuses it even when an application switched Pillow's guard off
    with pytest.raises(ImageTooLargeError, match=r"bomb\.png: 30000x30000 = 900,000,000 pixels exceeds"):
        load_image(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 89_478_485)  # Pillow's default again
    with pytest.raises(ImageTooLargeError, match=r"bomb\.png: refused as a decompression bomb"):
        load_image(path, max_pixels=None)  # Pillow's hard limit (2x) holds with ours disabled
    with pytest.raises(ImageTooLargeError, match=r"<\d+ bytes>: refused .*900000000 pixels"):
        load_image(path.read_bytes())  # the default: Pillow's guard fires first, inside Image.open


def test_pixel_limit_is_ours_and_configurable(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    path.write_bytes(huge_png(10_000, 10_000))  # 100 Mpx: over our default, under Pillow's 2x
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: (_ for _ in ()).throw(AssertionError("decoded")))
    with pytest.raises(ImageTooLargeError,
                       match=rf"big\.png: 10000x10000 = 100,000,000 pixels exceeds the limit of {DEFAULT_MAX_PIXELS:,}"):
        load_image(path)
    monkeypatch.undo()
    small = png_bytes(noise_rgb(5, (40, 30)))
    with pytest.raises(ImageTooLargeError, match="40x30 = 1,200 pixels exceeds the limit of 1,000"):
        load_image(small, max_pixels=1000)
    assert load_image(small, max_pixels=1200).size == (40, 30)
    with pytest.raises(ImageTooLargeError, match="1,000"):
        load_image(Image.fromarray(noise_rgb(5, (40, 30))), max_pixels=1000)


def test_nonexistent_file_and_folder(tmp_path):
    with pytest.raises(ImageNotFoundError, match=r"nope\.jpg: no such file") as info:
        load_image(tmp_path / "nope.jpg")
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(ImageNotFoundError, match=r"only http:// and https:// URLs"):
        load_image("ftp://example.com/a.jpg")
    with pytest.raises(InvalidImageError, match="is a directory"):
        load_image(tmp_path)


# -- folder walking --------------------------------------------------------------------------------

def test_expand_inputs_walks_folders_sorted_recursively(tmp_path):
    for rel in ("b/2.png", "b/10.JPG", "a.jpg", "b/sub/x.webp", ".hidden/y.jpg", "b/._junk.jpg", "b/notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    got = expand_inputs([str(tmp_path), "https://h/x.jpg", str(tmp_path / "missing.jpg"), str(tmp_path / "empty")])
    names = [n for n, _ in got]
    assert names[:4] == [str(tmp_path / r) for r in ("a.jpg", "b/10.JPG", "b/2.png", "b/sub/x.webp")]
    assert names[4:6] == ["https://h/x.jpg", str(tmp_path / "missing.jpg")]
    assert names[6] == str(tmp_path / "empty") and isinstance(got[6][1], InvalidImageError)
    assert "no image files" in str(got[6][1])
    assert is_image_filename("a.TIFF") and not is_image_filename("._a.jpg") and not is_image_filename("a.txt")


@pytest.mark.parametrize("make", [lambda: np.zeros((0, 0, 3), np.uint8), lambda: np.zeros((5, 0, 3), np.uint8),
                                  lambda: Image.new("RGB", (0, 5))])
def test_zero_sized_image_is_an_invalid_image(make):
    with pytest.raises(InvalidImageError, match="no pixels"):
        load_image(make())

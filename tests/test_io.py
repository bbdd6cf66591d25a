"""logdigit.io: every supported encoding gives the same grey picture; every bad file a
one-line ImageReadError naming it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from logdigit.errors import ImageReadError
from logdigit.io import MIN_SIDE, count_pages, iter_pages, read_scan

H, W = 96, 80


def _pattern(seed: int = 0) -> np.ndarray:
    """bool [H, W] ink pattern: a border, a grid line and noise (True = ink)."""
    rng = np.random.default_rng(seed)
    ink = rng.random((H, W)) < 0.1
    ink[:, 5] = True
    ink[40, :] = True
    return ink


def _grey_of(ink: np.ndarray) -> np.ndarray:
    return np.where(ink, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("compression", ["group4", "group3", "tiff_lzw", "tiff_adobe_deflate",
                                         "packbits", "raw"])
def test_1bit_tiff_compressions(tmp_path, compression):
    ink = _pattern()
    p = tmp_path / f"s_{compression}.tif"
    Image.fromarray(~ink).convert("1").save(p, compression=compression, dpi=(200, 200))
    s = read_scan(p)
    assert s.mode == "1-bit"
    assert s.grey.dtype == np.uint8 and s.grey.shape == (H, W)
    np.testing.assert_array_equal(s.grey, _grey_of(ink))
    assert s.rgb is None and s.n_pages == 1 and s.page == 0
    assert s.dpi == pytest.approx(200)
    want = {"tiff_lzw": "lzw", "tiff_adobe_deflate": "deflate", "raw": "none"}.get(compression,
                                                                                compression)
    assert s.compression == want


def test_1bit_miniswhite_tifffile(tmp_path):
    """Photometric MinIsWhite (1 = black), as most scanners write: still 0 = ink."""
    import tifffile
    ink = _pattern(1)
    p = tmp_path / "miw.tif"
    tifffile.imwrite(p, ink, photometric="miniswhite", compression="packbits")
    with tifffile.TiffFile(p) as tf:
        assert tf.pages[0].bitspersample == 1 and tf.pages[0].photometric == 0
    s = read_scan(p)
    assert s.mode == "1-bit"
    np.testing.assert_array_equal(s.grey, _grey_of(ink))


def test_grey8_and_grey16(tmp_path):
    import tifffile
    g = np.random.default_rng(2).integers(0, 256, (H, W)).astype(np.uint8)
    Image.fromarray(g).save(tmp_path / "g8.tif", compression="tiff_lzw")
    s = read_scan(tmp_path / "g8.tif")
    assert s.mode == "grey"
    np.testing.assert_array_equal(s.grey, g)
    g16 = (g.astype(np.uint16) * 257)
    tifffile.imwrite(tmp_path / "g16.tif", g16, photometric="minisblack")
    s = read_scan(tmp_path / "g16.tif")
    assert s.mode == "grey-16"
    np.testing.assert_array_equal(s.grey, g)
    # 16-bit PNG through Pillow
    Image.fromarray(g16).save(tmp_path / "g16.png")
    s = read_scan(tmp_path / "g16.png")
    np.testing.assert_array_equal(s.grey, g)
    assert s.compression == "png"


def test_palette_and_rgb(tmp_path):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (H, W, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.tif", compression="tiff_lzw")
    s = read_scan(tmp_path / "c.tif")
    assert s.mode == "rgb" and s.rgb is not None
    np.testing.assert_array_equal(s.rgb, rgb)
    luma = np.round(rgb.astype(np.float64) @ [0.299, 0.587, 0.114])
    assert np.abs(s.grey.astype(int) - luma).max() <= 1
    # palette: red, black, white, grey
    pal = np.array([[255, 0, 0], [0, 0, 0], [255, 255, 255], [128, 128, 128]], np.uint8)
    idx = rng.integers(0, 4, (H, W)).astype(np.uint8)
    im = Image.fromarray(idx, mode="P")
    im.putpalette(pal.ravel().tolist() + [0] * (768 - pal.size))
    im.save(tmp_path / "p.tif", compression="tiff_lzw")
    s = read_scan(tmp_path / "p.tif")
    assert s.mode == "palette"
    np.testing.assert_array_equal(s.rgb, pal[idx])
    assert s.grey[idx == 1].max() == 0 and s.grey[idx == 2].min() == 255


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_planar_tiffs_read_like_interleaved_ones(tmp_path, compression):
    """PlanarConfiguration 2 (one plane per sample, as some archive scanners write):
    RGB, and grey with an alpha plane, read as their interleaved twins (it had been
    refused as a corrupt TIFF)."""
    import tifffile

    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (H, W, 3)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb",
                     planarconfig="separate", compression=compression)
    tifffile.imwrite(tmp_path / "contig.tif", rgb, photometric="rgb", compression=compression)
    a, b = read_scan(tmp_path / "planar.tif"), read_scan(tmp_path / "contig.tif")
    assert a.mode == b.mode == "rgb"
    np.testing.assert_array_equal(a.rgb, rgb)
    np.testing.assert_array_equal(a.grey, b.grey)
    grey = _grey_of(_pattern(5))
    ga = np.stack([grey, np.full_like(grey, 255)])
    tifffile.imwrite(tmp_path / "ga.tif", ga, photometric="minisblack", planarconfig="separate",
                     extrasamples=["unassalpha"], compression=compression)
    np.testing.assert_array_equal(read_scan(tmp_path / "ga.tif").grey, grey)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_tag_is_applied(tmp_path, orientation):
    """A TIFF Orientation tag or a PNG's EXIF orientation (a scan stored sideways, a
    phone photo) is applied on reading: the picture comes out as Pillow's
    ``exif_transpose`` (what a viewer shows) turns it, grey and colour alike."""
    import tifffile
    from PIL import ImageOps

    rng = np.random.default_rng(orientation)
    rgb = rng.integers(0, 256, (H, W, 3)).astype(np.uint8)     # not square: turns show
    want = np.array(ImageOps.exif_transpose(_with_orientation(Image.fromarray(rgb),
                                                              orientation)))
    tifffile.imwrite(tmp_path / "o.tif", rgb, photometric="rgb",
                     extratags=[(274, "H", 1, orientation, True)])
    s = read_scan(tmp_path / "o.tif")
    assert s.orientation == orientation and s.describe()["orientation"] == orientation
    np.testing.assert_array_equal(s.rgb, want)
    im = Image.fromarray(rgb)
    im.save(tmp_path / "o.png", exif=_with_orientation(im, orientation).getexif())
    s = read_scan(tmp_path / "o.png")
    assert s.orientation == orientation
    np.testing.assert_array_equal(s.rgb, want)
    assert s.grey.shape == want.shape[:2]


def _with_orientation(im, orientation):
    im = im.copy()
    im.getexif()[0x0112] = orientation
    im.info["exif"] = im.getexif().tobytes()
    return im


def test_grey_palette_has_no_rgb(tmp_path):
    idx = np.random.default_rng(4).integers(0, 3, (H, W)).astype(np.uint8)
    im = Image.fromarray(idx, mode="P")
    im.putpalette([0, 0, 0, 128, 128, 128, 255, 255, 255] + [0] * 759)
    im.save(tmp_path / "gp.png")
    s = read_scan(tmp_path / "gp.png")
    assert s.rgb is None
    np.testing.assert_array_equal(s.grey, np.array([0, 128, 255], np.uint8)[idx])


def test_png_jpeg(tmp_path):
    g = _grey_of(_pattern(5))
    Image.fromarray(g).save(tmp_path / "a.png", dpi=(300, 300))
    s = read_scan(tmp_path / "a.png")
    np.testing.assert_array_equal(s.grey, g)
    assert s.dpi == pytest.approx(300, abs=0.1)
    Image.fromarray(g).save(tmp_path / "a.jpg", quality=95)
    s = read_scan(tmp_path / "a.jpg")
    assert s.compression == "jpeg" and s.grey.shape == (H, W)
    assert np.abs(s.grey.astype(int) - g).mean() < 12  # lossy


def test_multipage_and_bigtiff(tmp_path):
    import tifffile
    pages = [_grey_of(_pattern(k)) for k in range(3)]
    frames = [Image.fromarray(p).convert("1") for p in pages]
    mp = tmp_path / "multi.tif"
    frames[0].save(mp, save_all=True, append_images=frames[1:], compression="group4")
    assert count_pages(mp) == 3
    for k in range(3):
        s = read_scan(mp, page=k)
        assert s.n_pages == 3 and s.page == k
        np.testing.assert_array_equal(s.grey, pages[k])
    assert [s.page for s in iter_pages(mp)] == [0, 1, 2]
    with pytest.raises(ImageReadError, match="page 3 does not exist.*3 pages"):
        read_scan(mp, page=3)
    big = tmp_path / "big.tif"
    with tifffile.TiffWriter(big, bigtiff=True) as tw:
        for p in pages[:2]:
            tw.write(p, compression="zlib")
    with tifffile.TiffFile(big) as tf:
        assert tf.is_bigtiff
    assert count_pages(big) == 2
    np.testing.assert_array_equal(read_scan(big, page=1).grey, pages[1])


def _one_line(e: pytest.ExceptionInfo, path) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    assert e.value.path == str(path)
    return msg


@pytest.mark.parametrize("name,content,needle", [
    ("empty.tif", b"", "empty file"),
    ("text.tif", b"this is not an image at all, just some words\n" * 4, "not a supported image"),
    ("fake.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "corrupt"),
    ("junk_tiff.tif", b"II*\x00" + b"\xff" * 60, "corrupt"),
])
def test_bad_files(tmp_path, name, content, needle):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(ImageReadError) as e:
        read_scan(p)
    assert needle in _one_line(e, p)


def test_count_pages_refuses_non_images(tmp_path):
    p = tmp_path / "notes.tif"
    p.write_text("hello")
    with pytest.raises(ImageReadError, match="not a supported image"):
        count_pages(p)


def test_missing_and_directory(tmp_path):
    with pytest.raises(ImageReadError, match="not found"):
        read_scan(tmp_path / "nope.tif")
    with pytest.raises(ImageReadError, match="directory"):
        read_scan(tmp_path)


@pytest.mark.parametrize("fmt", ["tif", "png", "jpg"])
def test_truncated(tmp_path, fmt):
    g = np.random.default_rng(6).integers(0, 256, (400, 300)).astype(np.uint8)
    full = tmp_path / f"full.{fmt}"
    kw = {"compression": "tiff_lzw"} if fmt == "tif" else {}
    Image.fromarray(g).save(full, **kw)
    data = full.read_bytes()
    cut = tmp_path / f"cut.{fmt}"
    # TIFF: Pillow writes the directory at the end for LZW, so cut the middle out instead
    cut.write_bytes(data[: len(data) // 2] if fmt != "tif" else
                    data[:8] + b"\x00" * (len(data) // 2) + data[8 + len(data) // 2:])
    with pytest.raises(ImageReadError) as e:
        read_scan(cut)
    msg = _one_line(e, cut)
    assert any(w in msg for w in ("corrupt", "truncated", "not a supported"))


def test_truncated_g4_strip(tmp_path):
    """G4 data cut short (directory intact): an error, not garbage or a traceback."""
    import tifffile
    ink = np.zeros((600, 400), bool)
    ink[::7, :] = True
    ink[:, ::11] = True
    p = tmp_path / "g4.tif"
    Image.fromarray(~ink).convert("1").save(p, compression="group4")
    with tifffile.TiffFile(p) as tf:
        off = tf.pages[0].dataoffsets[0]
        n = tf.pages[0].databytecounts[0]
    data = bytearray(p.read_bytes())
    data[off + n // 3: off + n] = b"\x00" * (n - n // 3)
    p.write_bytes(bytes(data))
    try:
        s = read_scan(p)
    except ImageReadError as e:
        assert "\n" not in str(e) and "corrupt" in str(e)
    else:  # some decoders fill the rest with white: then it must at least be different
        assert not np.array_equal(s.grey == 0, ink)


@pytest.mark.parametrize("shape", [(MIN_SIDE - 1, 500), (500, MIN_SIDE - 1), (10, 10)])
def test_too_small(tmp_path, shape):
    p = tmp_path / "small.png"
    Image.fromarray(np.full(shape, 255, np.uint8)).save(p)
    with pytest.raises(ImageReadError, match="too small"):
        read_scan(p)
    Image.fromarray(np.full((MIN_SIDE, MIN_SIDE), 255, np.uint8)).save(p)
    assert read_scan(p).shape == (MIN_SIDE, MIN_SIDE)


def test_bad_page_argument(tmp_path):
    p = tmp_path / "a.png"
    Image.fromarray(np.full((80, 80), 255, np.uint8)).save(p)
    with pytest.raises(ImageReadError, match="page 1 does not exist"):
        read_scan(p, page=1)
    with pytest.raises(ImageReadError, match="not a page index"):
        read_scan(p, page=-1)


def test_pillow_bomb_guard_lifted(tmp_path):
    from PIL import Image as PImage
    from logdigit import io
    p = tmp_path / "a.png"
    PImage.fromarray(np.full((80, 80), 255, np.uint8)).save(p)
    read_scan(p)
    assert PImage.MAX_IMAGE_PIXELS == io.MAX_PIXELS >= 2000 * 150_000 * 2

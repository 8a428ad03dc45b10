"""photomaker_bridge.images: magic-byte sniffing, header dimensions, data URIs, hashes and STORED zips."""

from __future__ import annotations

import base64
import hashlib
import io
import struct
import zipfile

import pytest
from fixtures_images import gif_bytes, jpeg_bytes, png_bytes, webp_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from photomaker_bridge.images import (
    ZIP_MAX_BYTES,
    ImageFormat,
    build_data_uri,
    content_type_of,
    extension_of,
    image_size,
    parse_data_uri,
    sha256_hex,
    sniff_format,
    zip_digest,
    zip_images,
    zip_size,
)

# --- sniff_format -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (png_bytes(), "png"),
        (png_bytes(mode="RGBA"), "png"),
        (png_bytes(mode="P"), "png"),
        (jpeg_bytes(), "jpeg"),
        (jpeg_bytes(progressive=True), "jpeg"),
        (webp_bytes(), "webp"),
        (webp_bytes(lossless=True), "webp"),
        (webp_bytes(extended=True), "webp"),
    ],
)
def test_sniff_format_recognises_each_supported_format(data: bytes, expected: str) -> None:
    assert sniff_format(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x89PNG",  # truncated signature
        b"\xff\xd8",  # SOI without a following marker
        b"RIFF\x00\x00\x00\x00WAVEfmt ",  # RIFF, but audio
        b"RIFF\x00\x00\x00\x00WEB",  # too short to say WEBP
        b"GIF89a",
        b"BM\x00\x00",
        b"hello, world",
    ],
)
def test_sniff_format_refuses_everything_else(data: bytes) -> None:
    assert sniff_format(data) is None


def test_sniff_format_refuses_a_real_gif() -> None:
    assert sniff_format(gif_bytes()) is None
    assert image_size(gif_bytes()) is None


def test_sniffing_ignores_names_and_uses_bytes_only() -> None:
    # A PNG is a PNG whatever it is called; no function takes a name.
    assert sniff_format(png_bytes()) == "png"
    assert sniff_format(b"\xff\xd8\xff" + b"\x00" * 10) == "jpeg"


def test_content_types_and_extensions() -> None:
    assert [content_type_of(name) for name in ("png", "jpeg", "webp")] == ["image/png", "image/jpeg", "image/webp"]
    assert [extension_of(name) for name in ("png", "jpeg", "webp")] == ["png", "jpg", "webp"]


# --- image_size ---------------------------------------------------------------------------------------------

_VARIANTS = {
    "png-rgb": lambda w, h: png_bytes(w, h),
    "png-rgba": lambda w, h: png_bytes(w, h, mode="RGBA"),
    "png-grey": lambda w, h: png_bytes(w, h, mode="L"),
    "jpeg-baseline": lambda w, h: jpeg_bytes(w, h),
    "jpeg-progressive": lambda w, h: jpeg_bytes(w, h, progressive=True),
    "jpeg-exif-icc": lambda w, h: jpeg_bytes(w, h, exif=True, icc=True),
    "jpeg-progressive-exif": lambda w, h: jpeg_bytes(w, h, progressive=True, exif=True),
    "webp-lossy": lambda w, h: webp_bytes(w, h),
    "webp-lossless": lambda w, h: webp_bytes(w, h, lossless=True),
    "webp-extended-lossy": lambda w, h: webp_bytes(w, h, extended=True),
    "webp-extended-lossless": lambda w, h: webp_bytes(w, h, extended=True, lossless=True),
}


@pytest.mark.parametrize("variant", sorted(_VARIANTS))
@pytest.mark.parametrize(("width", "height"), [(1, 1), (3, 17), (640, 128), (1, 700)])
def test_image_size_reads_the_header(variant: str, width: int, height: int) -> None:
    data = _VARIANTS[variant](width, height)
    assert image_size(data) == (width, height)


def test_webp_variants_really_use_the_three_chunk_kinds() -> None:
    # Guards the test above: each WEBP variant exercises its own parser branch.
    assert webp_bytes()[12:16] == b"VP8 "
    assert webp_bytes(lossless=True)[12:16] == b"VP8L"
    assert webp_bytes(extended=True)[12:16] == b"VP8X"
    assert webp_bytes(extended=True, lossless=True)[12:16] == b"VP8X"


def test_progressive_jpeg_has_sof2_and_exif_jpeg_has_app1_before_the_frame() -> None:
    progressive = jpeg_bytes(9, 7, progressive=True)
    assert b"\xff\xc2" in progressive and b"\xff\xc0" not in progressive
    with_exif = jpeg_bytes(9, 7, exif=True)
    assert with_exif.index(b"\xff\xe1") < with_exif.index(b"\xff\xc0")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variant=st.sampled_from(sorted(_VARIANTS)), width=st.integers(1, 600), height=st.integers(1, 600))
def test_image_size_agrees_with_pillow(variant: str, width: int, height: int) -> None:
    data = _VARIANTS[variant](width, height)
    with Image.open(io.BytesIO(data)) as opened:
        assert image_size(data) == opened.size == (width, height)


@pytest.mark.parametrize("width", [16383, 2])
def test_webp_extremes_of_the_14_bit_fields(width: int) -> None:
    assert image_size(webp_bytes(width, 2, lossless=True)) == (width, 2)
    assert image_size(webp_bytes(width, 2)) == (width, 2)


def test_vp8_scale_bits_are_not_part_of_the_size() -> None:
    # The two top bits of each VP8 dimension are an upscaling hint, not pixels.
    frame = b"\x00\x00\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", 0xC000 | 300, 0x4000 | 200)
    data = b"RIFF" + struct.pack("<I", 4 + 8 + len(frame)) + b"WEBP" + b"VP8 " + struct.pack("<I", len(frame)) + frame
    assert image_size(data) == (300, 200)


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _sof(marker: int, width: int, height: int) -> bytes:
    return _segment(marker, b"\x08" + struct.pack(">HH", height, width) + b"\x01\x01\x11\x00")


@pytest.mark.parametrize("not_a_frame", [0xC4, 0xC8, 0xCC])
def test_jpeg_dht_jpg_and_dac_markers_are_not_frame_headers(not_a_frame: int) -> None:
    # These share the C0-CF range with the SOF markers; their payload would read as a bogus 2570 x 2570.
    decoy = _segment(not_a_frame, b"\x00\x0a\x0a\x0a\x0a\x0a\x0a\x0a\x0a")
    data = b"\xff\xd8" + decoy + _sof(0xC0, 321, 123) + b"\xff\xd9"
    assert image_size(data) == (321, 123)


@pytest.mark.parametrize("frame", [0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF])
def test_every_sof_marker_carries_the_size(frame: int) -> None:
    data = b"\xff\xd8" + _segment(0xE0, b"JFIF\x00" + b"\x00" * 9) + _sof(frame, 40, 30) + b"\xff\xd9"
    assert image_size(data) == (40, 30)


def test_jpeg_fill_bytes_before_a_marker_are_skipped() -> None:
    original = jpeg_bytes(33, 21)
    padded = original[:2] + b"\xff\xff\xff" + original[2:]
    assert image_size(padded) == (33, 21)
    with Image.open(io.BytesIO(padded)) as opened:
        assert opened.size == (33, 21)


def test_jpeg_restart_markers_without_length_are_skipped() -> None:
    data = b"\xff\xd8" + b"\xff\xd0\xff\xd7" + b"\xff\x01" + _sof(0xC0, 64, 48)
    assert image_size(data) == (64, 48)


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00",  # IHDR cut short
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dCgBI" + b"\x00" * 16,  # first chunk is not IHDR
        b"\xff\xd8\xff",  # SOI only
        b"\xff\xd8" + _segment(0xE0, b"JFIF\x00"),  # no frame header at all
        b"\xff\xd8\xff\xc0\x00\x11\x08\x00",  # frame header cut short
        b"\xff\xd8\x00\x00\x00\x00",  # garbage where a marker should be
        b"RIFF\x00\x00\x00\x00WEBPVP8 \x00\x00",  # VP8 cut short
        b"RIFF\x00\x00\x00\x00WEBPVP8L\x00\x00",  # VP8L cut short
        b"RIFF\x00\x00\x00\x00WEBPVP8X\x00\x00",  # VP8X cut short
        b"RIFF\x00\x00\x00\x00WEBPABCD" + b"\x00" * 30,  # unknown first chunk
        b"not an image at all",
    ],
)
def test_image_size_is_none_when_the_header_cannot_be_read(data: bytes) -> None:
    assert image_size(data) is None


@pytest.mark.parametrize("magic", [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\x00\x00\x00\x00WEBP"])
@given(tail=st.binary(max_size=80))
def test_image_size_never_raises_on_garbage_after_the_magic(magic: bytes, tail: bytes) -> None:
    size = image_size(magic + tail)
    assert size is None or (isinstance(size, tuple) and len(size) == 2 and all(isinstance(n, int) for n in size))


def test_image_size_of_a_truncated_real_jpeg_still_reads_the_frame() -> None:
    data = jpeg_bytes(100, 50)
    end_of_frame = data.index(b"\xff\xc0") + 9
    assert image_size(data[:end_of_frame]) == (100, 50)
    assert image_size(data[: end_of_frame - 1]) is None


# --- hashes -------------------------------------------------------------------------------------------------


def test_sha256_hex_is_lowercase_hex_of_the_bytes() -> None:
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    data = png_bytes(3, 3)
    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()


# --- data URIs ----------------------------------------------------------------------------------------------


def test_build_data_uri_exact_form() -> None:
    assert build_data_uri(b"\x89PNG", "image/png") == "data:image/png;base64,iVBORw=="


@given(data=st.binary(max_size=300), content_type=st.sampled_from(["image/png", "image/jpeg", "image/webp"]))
def test_data_uri_round_trip(data: bytes, content_type: str) -> None:
    assert parse_data_uri(build_data_uri(data, content_type)) == (content_type, data)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("DATA:IMAGE/PNG;BASE64,iVBORw==", ("IMAGE/PNG", b"\x89PNG")),
        ("data:image/png;name=face.png;base64,iVBORw==", ("image/png", b"\x89PNG")),
        ("data:;base64,iVBORw==", (None, b"\x89PNG")),
        ("data:,hello%20world", (None, b"hello world")),
        ("data:text/plain;charset=utf-8,caf%C3%A9", ("text/plain", "café".encode())),
    ],
)
def test_parse_data_uri_variants(uri: str, expected: tuple[str | None, bytes]) -> None:
    assert parse_data_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("image/png;base64,iVBORw==", "not a data URI"),
        ("data:image/png;base64", "not a data URI"),  # no comma
        ("data:image/png;base64,***", "base64 payload is invalid"),
        ("data:image/png;base64,iVBORw=", "base64 payload is invalid"),  # bad padding
    ],
)
def test_parse_data_uri_refuses_malformed_uris(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_data_uri(uri)


# --- zip_images ---------------------------------------------------------------------------------------------


def test_zip_images_stores_generated_names_and_exact_bytes() -> None:
    images: list[tuple[ImageFormat, bytes]] = [("jpeg", jpeg_bytes(5, 5)), ("png", png_bytes(6, 6)),
                                               ("webp", webp_bytes(7, 7))]
    archive = zip_images(images)
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert opened.testzip() is None
        infos = opened.infolist()
        assert [info.filename for info in infos] == ["image_1.jpg", "image_2.png", "image_3.webp"]
        assert all(info.compress_type == zipfile.ZIP_STORED for info in infos)
        assert all(info.date_time == (2024, 1, 1, 0, 0, 0) for info in infos)
        assert [opened.read(info) for info in infos] == [data for _, data in images]


def test_zip_entries_are_stored_even_when_deflating_would_pay() -> None:
    compressible = b"\x89PNG\r\n\x1a\n" + b"\x00" * 50_000
    with zipfile.ZipFile(io.BytesIO(zip_images([("png", compressible)]))) as opened:
        (info,) = opened.infolist()
        assert info.compress_size == info.file_size == len(compressible)


def test_zip_images_is_deterministic() -> None:
    images: list[tuple[ImageFormat, bytes]] = [("png", png_bytes(4, 4)), ("jpeg", jpeg_bytes(4, 4))]
    first = zip_images(images)
    assert zip_images(images) == first
    assert sha256_hex(zip_images(images)) == sha256_hex(first)
    assert zip_images(list(reversed(images))) != first


def test_zip_images_of_nothing_is_an_empty_archive() -> None:
    with zipfile.ZipFile(io.BytesIO(zip_images([]))) as opened:
        assert opened.namelist() == []


def test_zip_entry_names_are_never_user_names() -> None:
    archive = zip_images([("png", png_bytes())])
    assert b"image_1.png" in archive
    assert base64.b64encode(archive)  # plain bytes, ready to upload


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["png", "jpeg"]), st.binary(max_size=3000)), min_size=1, max_size=4))
def test_zip_size_is_the_length_of_the_archive(members: list[tuple[ImageFormat, bytes]]) -> None:
    assert zip_size([(image_format, len(data)) for image_format, data in members]) == len(zip_images(members))


def test_zip_digest_names_the_members_formats_and_bytes() -> None:
    face, other = hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"b").hexdigest()
    assert zip_digest([("png", face)]) == zip_digest([("png", face)])
    assert len({zip_digest([("png", face)]), zip_digest([("jpeg", face)]), zip_digest([("png", other)]),
                zip_digest([("png", face), ("png", other)]), zip_digest([("png", other), ("png", face)])}) == 5


def test_zip_size_refuses_what_would_need_zip64() -> None:
    with pytest.raises(ValueError, match="ZIP64"):
        zip_size([("png", ZIP_MAX_BYTES), ("png", 1)])

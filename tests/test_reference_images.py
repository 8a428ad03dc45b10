"""ReferenceImage: every way to give a face photo, checked once, and every way it can be refused."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures_images import gif_bytes, jpeg_bytes, png_bytes, webp_bytes, write_image

from photomaker_bridge import InvalidRequestError, PhotoMakerRequest, ReferenceImage
from photomaker_bridge.request import DEFAULT_MAX_IMAGE_BYTES

UUID = "8E2B1C54-1F0A-4C39-9B7E-0D4A5B6C7D8E"


def _refused(value: object, **options: int) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        ReferenceImage.load(value, **options)  # type: ignore[arg-type]
    return caught.value


# --- accepted sources ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_path", [False, True], ids=["str", "Path"])
def test_from_a_path(tmp_path: Path, as_path: bool) -> None:
    data = jpeg_bytes(40, 30)
    path = write_image(tmp_path, "face.jpg", data)
    image = ReferenceImage.load(path if as_path else str(path))
    assert image.kind == "path"
    assert image.source == str(path)
    assert image.data == data
    assert (image.image_format, image.width, image.height) == ("jpeg", 40, 30)
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert image.size == len(data)
    assert image.content_type == "image/jpeg"
    assert image.is_local
    assert (image.url, image.uuid) == (None, None)


def test_a_tilde_path_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write_image(tmp_path, "me.png", png_bytes(9, 9))
    image = ReferenceImage.load("~/me.png")
    assert image.source == str(tmp_path / "me.png")
    assert (image.width, image.height) == (9, 9)


def test_the_file_name_does_not_decide_the_format(tmp_path: Path) -> None:
    path = write_image(tmp_path, "face.jpg", webp_bytes(12, 10))
    image = ReferenceImage.load(path)
    assert (image.image_format, image.content_type, image.width, image.height) == ("webp", "image/webp", 12, 10)


@pytest.mark.parametrize("wrap", [bytes, bytearray], ids=["bytes", "bytearray"])
def test_from_bytes(wrap: type) -> None:
    data = png_bytes(20, 10)
    image = ReferenceImage.load(wrap(data))
    assert image.kind == "bytes"
    assert image.source == f"<{len(data)} bytes>"
    assert type(image.data) is bytes and image.data == data
    assert (image.image_format, image.width, image.height) == ("png", 20, 10)
    assert image.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "url",
    ["https://example.com/face.jpg", "http://example.com/a?b=c", "HTTPS://EXAMPLE.COM/X.PNG",
     "https://example.com/no-extension"],
)
def test_urls_stay_urls(url: str) -> None:
    image = ReferenceImage.load(f"  {url} ")
    assert image.kind == "url"
    assert image.url == url == image.source
    assert image.data is None and not image.is_local
    assert (image.image_format, image.width, image.height, image.sha256, image.size) == (None,) * 5
    assert image.content_type is None
    assert image.serialize() == url


def test_from_a_data_uri() -> None:
    data = webp_bytes(16, 8, lossless=True)
    uri = "data:image/webp;base64," + base64.b64encode(data).decode()
    image = ReferenceImage.load(uri)
    assert image.kind == "data_uri"
    assert image.data == data
    assert (image.image_format, image.width, image.height) == ("webp", 16, 8)
    assert image.source.startswith("data:image/webp;base64,") and image.source.endswith("...")
    assert len(image.source) == 43


def test_from_bare_base64() -> None:
    data = jpeg_bytes(24, 12)
    text = base64.b64encode(data).decode()
    image = ReferenceImage.load(text)
    assert image.kind == "base64"
    assert image.data == data
    assert image.source == f"<base64, {len(text)} characters>"
    assert (image.image_format, image.width, image.height) == ("jpeg", 24, 12)


def test_from_line_wrapped_base64() -> None:
    data = png_bytes(30, 30)
    text = base64.encodebytes(data).decode()  # MIME style: a newline every 76 characters
    assert "\n" in text.strip()
    image = ReferenceImage.load(text)
    assert (image.kind, image.data) == ("base64", data)


def test_long_base64_without_slashes_is_not_mistaken_for_a_too_long_path() -> None:
    # Such a string is one huge "file name"; asking the OS about it fails with ENAMETOOLONG, which must not
    # escape as an OSError.
    data = png_bytes(1, 1) + b"\x00" * 300
    text = base64.b64encode(data).decode()
    assert len(text) < 4096 and "/" not in text and len(text) > 255
    image = ReferenceImage.load(text)
    assert (image.kind, image.data) == ("base64", data)


def test_a_long_string_that_is_neither_path_nor_image_is_refused_cleanly() -> None:
    error = _refused("a" * 300)
    assert error.field == "images[0]"
    assert error.reason == "its bytes are not a PNG, JPEG or WEBP image"


def test_from_a_runware_uuid() -> None:
    image = ReferenceImage.load(UUID)
    assert image.kind == "runware_uuid"
    assert image.uuid == UUID.lower()
    assert image.source == UUID
    assert image.data is None and not image.is_local
    assert image.serialize() == UUID.lower()


def test_a_file_named_like_a_uuid_is_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_image(tmp_path, UUID, png_bytes(3, 4))
    image = ReferenceImage.load(UUID)
    assert image.kind == "path"
    assert (image.width, image.height) == (3, 4)


def test_a_reference_image_passes_through_unchanged() -> None:
    image = ReferenceImage.load(png_bytes())
    assert ReferenceImage.load(image) is image


def test_local_data_is_read_exactly_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_image(tmp_path, "face.png", png_bytes(10, 10))
    reads: list[Path] = []
    real_read = Path.read_bytes

    def counting_read(self: Path) -> bytes:
        reads.append(self)
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", counting_read)
    image = ReferenceImage.load(path)
    assert image.sha256 and image.width == 10 and image.data_uri() and image.size
    assert reads == [path]


@pytest.mark.parametrize(
    "make", [lambda: png_bytes(7, 5), lambda: jpeg_bytes(7, 5, progressive=True), lambda: webp_bytes(7, 5)]
)
def test_equality_is_by_content_not_by_source(tmp_path: Path, make: Callable[[], bytes]) -> None:
    data = make()
    from_bytes = ReferenceImage.load(data)
    from_path = ReferenceImage.load(write_image(tmp_path, "x", data))
    from_uri = ReferenceImage.load(from_bytes.data_uri())
    assert from_bytes == from_path == from_uri
    assert hash(from_bytes) == hash(from_path) == hash(from_uri)
    assert from_bytes != ReferenceImage.load(png_bytes(7, 6))


def test_data_uri_of_a_local_image_and_not_of_a_url() -> None:
    data = png_bytes(2, 2)
    assert ReferenceImage.load(data).data_uri() == "data:image/png;base64," + base64.b64encode(data).decode()
    with pytest.raises(ValueError, match=re.escape("https://example.com/f.png is not local")):
        ReferenceImage.load("https://example.com/f.png").data_uri()


def test_repr_shows_no_image_bytes() -> None:
    data = png_bytes(2, 2)
    text = repr(ReferenceImage.load(data))
    assert "\\x89PNG" not in text and "data=" not in text
    assert "kind='bytes'" in text and "width=2" in text


@pytest.mark.parametrize("kind", ["path", "bytes", "data_uri", "base64", "url", "runware_uuid"])
def test_serialize_then_load_gives_the_same_image(tmp_path: Path, kind: str) -> None:
    data = jpeg_bytes(8, 8)
    sources: dict[str, object] = {
        "path": write_image(tmp_path, "a.jpg", data),
        "bytes": data,
        "data_uri": "data:image/jpeg;base64," + base64.b64encode(data).decode(),
        "base64": base64.b64encode(data).decode(),
        "url": "https://example.com/a.jpg",
        "runware_uuid": UUID,
    }
    image = ReferenceImage.load(sources[kind])  # type: ignore[arg-type]
    assert image.kind == kind
    again = ReferenceImage.load(image.serialize())
    assert again == image
    expected_kind = {"bytes": "data_uri", "base64": "data_uri"}.get(kind, kind)
    assert again.kind == expected_kind


# --- refusals -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_path", [False, True], ids=["str", "Path"])
def test_a_missing_path(tmp_path: Path, as_path: bool) -> None:
    missing = tmp_path / "nobody.jpg"
    error = _refused(missing if as_path else str(missing))
    assert error.field == "images[0]"
    assert error.value == str(missing)
    assert error.reason == "no such file"
    assert str(missing) in str(error) and "images[0]" in str(error) and "no such file" in str(error)
    assert "existing" in error.allowed


def test_a_relative_missing_path() -> None:
    error = _refused("face1.jpg")
    assert (error.field, error.value, error.reason) == ("images[0]", "face1.jpg", "no such file")
    assert error.allowed == "an existing file, an http(s) URL, a data URI, base64 or a Runware image UUID"


def test_an_empty_file(tmp_path: Path) -> None:
    path = write_image(tmp_path, "empty.png", b"")
    error = _refused(path)
    assert (error.field, error.value, error.reason) == ("images[0]", str(path), "it is empty")
    assert error.allowed == "a PNG, JPEG or WEBP image"


@pytest.mark.parametrize(("name", "data"), [("notes.jpg", b"just some text\n"), ("anim.gif", gif_bytes())])
def test_a_non_image_or_unsupported_file(tmp_path: Path, name: str, data: bytes) -> None:
    path = write_image(tmp_path, name, data)
    error = _refused(path)
    assert (error.field, error.value) == ("images[0]", str(path))
    assert error.reason == "its bytes are not a PNG, JPEG or WEBP image"
    assert error.allowed == "a PNG, JPEG or WEBP image"
    assert str(error) == f"images[0]: {str(path)!r} is not allowed (its bytes are not a PNG, JPEG or WEBP image); " \
                         "a PNG, JPEG or WEBP image"


def test_gif_bytes_name_the_byte_count() -> None:
    data = gif_bytes()
    error = _refused(data)
    assert error.value == f"<{len(data)} bytes>"
    assert "not a PNG, JPEG or WEBP" in str(error)


def test_a_directory(tmp_path: Path) -> None:
    error = _refused(tmp_path)
    assert (error.field, error.value, error.reason) == ("images[0]", str(tmp_path), "not a regular file")


def test_an_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_image(tmp_path, "locked.png", png_bytes())

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    error = _refused(path)
    assert (error.field, error.value) == ("images[0]", str(path))
    assert error.reason == "cannot read it: Permission denied"


def test_the_size_cap_is_20_mb_by_default(tmp_path: Path) -> None:
    assert DEFAULT_MAX_IMAGE_BYTES == 20 * 1024 * 1024
    path = tmp_path / "huge.png"
    with path.open("wb") as handle:  # sparse: nothing is written, and the cap is checked before reading
        handle.write(png_bytes())
        handle.truncate(DEFAULT_MAX_IMAGE_BYTES + 1)
    error = _refused(path)
    assert (error.field, error.value) == ("images[0]", str(path))
    assert error.allowed == f"at most {DEFAULT_MAX_IMAGE_BYTES} bytes"
    assert error.reason == f"the file has {DEFAULT_MAX_IMAGE_BYTES + 1} bytes"


def test_the_size_cap_applies_to_bytes_and_is_inclusive() -> None:
    data = png_bytes(4, 4)
    assert ReferenceImage.load(data, max_bytes=len(data)).size == len(data)
    error = _refused(data, max_bytes=len(data) - 1)
    assert error.allowed == f"at most {len(data) - 1} bytes"
    assert error.reason == f"it has {len(data)} bytes"


def test_the_size_cap_applies_to_files_and_data_uris(tmp_path: Path) -> None:
    data = png_bytes(4, 4)
    assert _refused(write_image(tmp_path, "a.png", data), max_bytes=10).reason == f"the file has {len(data)} bytes"
    uri = ReferenceImage.load(data).data_uri()
    assert _refused(uri, max_bytes=10).reason == f"it has {len(data)} bytes"


def test_a_bigger_cap_can_be_configured() -> None:
    data = png_bytes(2, 2) + b"\x00" * (DEFAULT_MAX_IMAGE_BYTES + 1 - len(png_bytes(2, 2)))
    assert _refused(data).reason == f"it has {DEFAULT_MAX_IMAGE_BYTES + 1} bytes"
    assert ReferenceImage.load(data, max_bytes=DEFAULT_MAX_IMAGE_BYTES + 1).image_format == "png"


@pytest.mark.parametrize("value", ["", "   ", "\n"])
def test_an_empty_string(value: str) -> None:
    error = _refused(value)
    assert (error.field, error.value, error.reason) == ("images[0]", value, "it is empty")


def test_a_string_with_a_nul_byte() -> None:
    error = _refused("face\x00.jpg")
    assert (error.field, error.reason) == ("images[0]", "no such file")


def test_a_bad_data_uri() -> None:
    error = _refused("data:image/png;base64,@@@@")
    assert error.field == "images[0]"
    assert error.allowed == "a data:image/...;base64,... URI"
    assert error.reason is not None and "base64 payload is invalid" in error.reason


def test_a_data_uri_of_a_gif() -> None:
    error = _refused("data:image/gif;base64," + base64.b64encode(gif_bytes()).decode())
    assert error.reason == "its bytes are not a PNG, JPEG or WEBP image"
    assert str(error.value).startswith("data:image/gif;base64,")


def test_base64_with_bad_padding() -> None:
    text = base64.b64encode(png_bytes(20, 20)).decode().rstrip("=")
    text += "A" * ((1 - len(text)) % 4)  # a length of 4n + 1 is never valid base64
    error = _refused(text)
    assert error.field == "images[0]"
    assert error.allowed == "valid base64 of a PNG, JPEG or WEBP image"


@pytest.mark.parametrize("value", [123, 4.5, None, {"url": "x"}])
def test_an_unsupported_type(value: object) -> None:
    error = _refused(value)
    assert error.field == "images[0]"
    assert error.reason == f"unsupported type {type(value).__name__}"


def test_an_unsupported_url_scheme_is_not_a_url() -> None:
    error = _refused("ftp://example.com/face.jpg")
    assert (error.field, error.reason) == ("images[0]", "no such file")


# --- through the request: which image ----------------------------------------------------------------------


def test_the_request_names_the_index_of_the_bad_image(tmp_path: Path) -> None:
    good = write_image(tmp_path, "good.png", png_bytes())
    bad = write_image(tmp_path, "bad.gif", gif_bytes())
    with pytest.raises(InvalidRequestError) as caught:
        PhotoMakerRequest(prompt="a man img", images=[good, "https://example.com/x.jpg", bad])
    assert caught.value.field == "images[2]"
    assert caught.value.value == str(bad)
    assert str(caught.value).startswith(f"images[2]: {str(bad)!r} is not allowed")


def test_the_request_takes_every_kind_at_once(tmp_path: Path) -> None:
    images = [write_image(tmp_path, "a.png", png_bytes()), jpeg_bytes(), "https://example.com/b.jpg", UUID]
    request = PhotoMakerRequest(prompt="a man img", images=images)
    assert [image.kind for image in request.images] == ["path", "bytes", "url", "runware_uuid"]

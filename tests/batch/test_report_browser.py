"""``report.html`` in a real browser: headless Chromium (Debian's ``chromium``, which ``.ci/run`` installs) opens
the acceptance compare's report from a ``file://`` URL.

* every image loaded: the page's own script writes each image's decoded width into ``data-natural-width``
  once the image has loaded or failed, and ``--dump-dom`` prints the DOM after the page's load event (which
  waits for every image), so a width of 0 means the browser could not load or decode the file — shown by a
  control run with one image file deleted;
* the summary table holds the numbers of ``summary.json``;
* the page makes no network request: Chromium's own network log (``--log-net-log``) records every URL request
  with the page that made it (its network isolation key is the page's ``file://`` origin); a control page
  with one ``http://127.0.0.1`` image shows that such a request is recorded. Chromium's own background
  traffic is resolved to nothing (``--host-resolver-rules``), so nothing leaves the machine either way;
* a screenshot is kept under ``test-artifacts/`` (or ``$PHOTOMAKER_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from helpers_batch import AcceptanceRun, finished_by_key, journal_lines
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("PHOTOMAKER_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
BROWSER_SECONDS = 240
"""Generous: one Chromium start takes about a second here, many more on a busy machine."""

if CHROMIUM is None:
    if os.environ.get("PHOTOMAKER_REQUIRE_BROWSER"):
        raise RuntimeError("PHOTOMAKER_REQUIRE_BROWSER is set but no chromium is installed (apt-get install chromium)")
    pytest.skip("headless Chromium is not installed (apt-get install chromium; .ci/run does it)",
                allow_module_level=True)


def chromium(tmp_path: Path, url: str, *action: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium once on ``url`` with a fresh profile and a network log in ``tmp_path``."""
    assert CHROMIUM is not None
    profile = tmp_path / "profile"
    shutil.rmtree(profile, ignore_errors=True)
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
        "--no-default-browser-check", "--hide-scrollbars",
        # Chromium's own background requests (time, updates, accounts) resolve to nothing: none leaves the host.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}", f"--log-net-log={tmp_path / 'net.json'}", *action, url,
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_SECONDS, check=False)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed


def page_requests(net_log: Path) -> list[str]:
    """URLs the page itself requested over the network, from Chromium's network log."""
    document = json.loads(net_log.read_text())
    names = {number: name for name, number in document["constants"]["logEventTypes"].items()}
    urls = []
    for event in document["events"]:
        parameters = event.get("params") or {}
        if names.get(event["type"]) != "URL_REQUEST_START_JOB" or "url" not in parameters:
            continue
        if str(parameters.get("network_isolation_key", "")).startswith("file://"):
            urls.append(parameters["url"])
    return urls


class _Page(HTMLParser):
    """The dumped DOM's images and summary table cells."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.table: dict[str, dict[str, str]] = {}
        self.meta: list[dict[str, str | None]] = []
        self._row: str | None = None
        self._column: str | None = None
        self._text: list[str] = []
        self._in_table = False

    def handle_starttag(self, tag: str, attributes: list[tuple[str, str | None]]) -> None:
        values = dict(attributes)
        if tag == "img":
            self.images.append(values)
        elif tag == "meta":
            self.meta.append(values)
        elif tag == "table" and values.get("id") == "summary-table":
            self._in_table = True
        elif self._in_table and tag == "tr" and values.get("data-provider"):
            self._row = values["data-provider"]
            self.table[self._row or ""] = {}
        elif self._row and tag in ("td", "th") and values.get("data-column"):
            self._column, self._text = values["data-column"], []

    def handle_data(self, data: str) -> None:
        if self._column:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row and self._column:
            self.table[self._row][self._column] = "".join(self._text).strip()
            self._column = None
        elif tag == "tr":
            self._row = None
        elif tag == "table":
            self._in_table = False


def parse(dom: str) -> _Page:
    page = _Page()
    page.feed(dom)
    return page


@pytest.fixture(scope="module")
def dumped(acceptance_run: AcceptanceRun, tmp_path_factory: pytest.TempPathFactory) -> tuple[_Page, list[str]]:
    """The report's DOM after load, and the network requests the page made, from one Chromium run."""
    tmp_path = tmp_path_factory.mktemp("browser")
    completed = chromium(tmp_path, (acceptance_run.out / "report.html").as_uri(), "--dump-dom")
    return parse(completed.stdout), page_requests(tmp_path / "net.json")


def test_every_image_loaded(acceptance_run: AcceptanceRun, dumped: tuple[_Page, list[str]]) -> None:
    page, _ = dumped
    saved = [image["path"] for line in finished_by_key(journal_lines(acceptance_run.out)).values()
             for image in line["images"]]
    assert len(saved) == 45
    assert sorted(image["src"] or "" for image in page.images) == sorted(saved)
    widths = {image["src"]: image.get("data-natural-width") for image in page.images}
    assert all(width is not None and int(width) > 0 for width in widths.values()), widths


def _number(text: str) -> float:
    return float(text.replace("%", "").replace("USD", "").strip())


def test_the_table_holds_the_summary_numbers(acceptance_run: AcceptanceRun, dumped: tuple[_Page, list[str]]) -> None:
    page, _ = dumped
    summary = json.loads((acceptance_run.out / "summary.json").read_text())
    assert sorted(page.table) == sorted(item["provider"] for item in summary["providers"])
    for item in summary["providers"]:
        row = page.table[item["provider"]]
        assert int(row["jobs"]) == item["jobs"] and int(row["successes"]) == item["successes"]
        assert int(row["unfinished"]) == item["unfinished"]
        assert abs(_number(row["success_rate"]) - item["success_rate"] * 100) <= 0.05
        for phase in ("queue", "run", "total"):
            for rank in ("p50", "p95"):
                value = item[f"{phase}_seconds"][rank]
                cell = row[f"{phase}_{rank}"]
                if value is None:
                    assert cell == "–"
                else:
                    assert abs(_number(cell) - value) <= 0.005, (item["provider"], phase, rank, cell, value)
        assert abs(_number(row["images_per_second"]) - item["images_per_second"]) <= 0.005
        for source in ("reported", "estimated"):
            per_image = item[f"cost_{source}"]["per_image"]
            cell = row[f"cost_{source}"]
            assert (cell == "–") if per_image is None else Decimal(cell.split()[0]) == Decimal(per_image)
        for name, count in item["errors"].items():
            assert f"{name} {count}" in row["errors"]


def test_the_page_makes_no_network_request(dumped: tuple[_Page, list[str]]) -> None:
    page, requests = dumped
    assert requests == []
    (policy,) = [meta["content"] for meta in page.meta if meta.get("http-equiv") == "Content-Security-Policy"]
    assert policy is not None and "default-src 'none'" in policy and "img-src 'self'" in policy


@pytest.fixture
def local_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server recording the paths asked of it."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *arguments: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_network_log_does_record_a_page_request(tmp_path: Path, local_server: tuple[str, list[str]]) -> None:
    """Control: the same check sees a page that loads an image over HTTP."""
    base, seen = local_server
    page = tmp_path / "control.html"
    page.write_text(f'<!DOCTYPE html><html><body><img src="{base}/pixel.png"></body></html>')
    chromium(tmp_path, page.as_uri(), "--dump-dom")
    assert page_requests(tmp_path / "net.json") == [f"{base}/pixel.png"]
    assert seen == ["/pixel.png"]


def test_a_missing_image_file_shows_as_not_loaded(acceptance_run: AcceptanceRun, tmp_path: Path) -> None:
    """Control: the image check fails for an image the browser cannot load (and the page says so)."""
    copy = tmp_path / "copy"
    shutil.copytree(acceptance_run.out, copy)
    removed = sorted((copy / "images").iterdir())[0]
    removed.unlink()
    page = parse(chromium(tmp_path, (copy / "report.html").as_uri(), "--dump-dom").stdout)
    broken = [image["src"] for image in page.images if image.get("data-natural-width") == "0"]
    assert broken == [f"images/{removed.name}"]


def test_a_screenshot_is_kept(acceptance_run: AcceptanceRun, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / "report.png"
    target.unlink(missing_ok=True)
    chromium(tmp_path, (acceptance_run.out / "report.html").as_uri(), f"--screenshot={target}",
             "--window-size=1280,1600")
    with Image.open(target) as shot:
        assert shot.size == (1280, 1600)
        colours = {colour for _, colour in shot.convert("RGB").getcolors(maxcolors=1 << 20) or []}
    # The page was drawn: the providers' swatch colours (Okabe–Ito) are on it.
    assert {(0, 114, 178), (213, 94, 0), (0, 158, 115)} <= colours

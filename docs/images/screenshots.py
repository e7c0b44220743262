"""Retake the README's two screenshots from a real run, as a user would see it.

    .venv/bin/diagnose models/artifacts/cnn.h5 --out /tmp/readme-demo
    .venv/bin/python docs/images/screenshots.py /tmp/readme-demo

report.png: the HTML report's explain.gradients section (each method's verdict and checks, the findings, the
maps); dashboard.png: the dashboard's Explanations page, served by a real `diagnose dashboard REPORT_DIR`.
Both in headless Debian chromium (/usr/bin/chromium; `make browser-deps`); a shot over 200 kB is quantized to 256
colours (tests/core/test_readme.py checks the size).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
DIAGNOSE = str(Path(sys.executable).parent / "diagnose")
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
LIMIT = 200_000


def save_small(png: bytes, path: Path) -> None:
    """Write a screenshot as it is when it fits under the limit, else as a 256-colour PNG, a third of the size.
    Maximum coverage keeps every pixel within 11/255 of the original on the report (median cut: 87/255, pale
    blue map cells turned dark blue); it tints pale greys slightly, so a shot that fits is left alone."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.save(path, optimize=True)
    how = "true colour"
    if path.stat().st_size >= LIMIT:
        image.quantize(colors=256, method=Image.Quantize.MAXCOVERAGE).save(path, optimize=True)
        how = "256 colours"
    size = path.stat().st_size
    if size >= LIMIT:
        raise SystemExit(f"{path} is {size} bytes, over {LIMIT}: crop the shot or shrink the viewport")
    print(f"{path}: {image.size[0]}x{image.size[1]}, {how}, {size} bytes")


def report_shot(browser, report_dir: Path) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto((report_dir / "report.html").as_uri())
    page.wait_for_load_state("load")
    # From the explain.gradients heading to the bottom of its first figure (the maps and their verdicts).
    top, bottom = page.evaluate("""() => {
        const h = [...document.querySelectorAll('h2')].find(e => e.textContent.startsWith('explain.gradients'));
        let e = h.nextElementSibling, bottom = h.getBoundingClientRect().bottom;
        while (e && e.tagName !== 'H2') {
            bottom = e.getBoundingClientRect().bottom + window.scrollY;
            if (e.querySelector('img')) break;
            e = e.nextElementSibling;
        }
        return [h.getBoundingClientRect().top + window.scrollY - 12, bottom + 12];
    }""")
    png = page.screenshot(full_page=True, clip={"x": 0, "y": top, "width": 1100, "height": bottom - top})
    save_small(png, HERE / "report.png")
    page.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dashboard(report_dir: Path):
    """`diagnose dashboard REPORT_DIR` on a free port, until its health endpoint answers; stopped afterwards."""
    port = _free_port()
    proc = subprocess.Popen([DIAGNOSE, "dashboard", str(report_dir), "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"diagnose dashboard exited {proc.returncode}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read() == b"ok":
                    break
            if time.monotonic() > deadline:
                raise SystemExit("the dashboard did not come up in 120 s")
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def settle(page, timeout_s: float = 120) -> None:
    """Until Streamlit has finished its script run and every skeleton is replaced (as the browser test waits)."""
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while quiet < 5:
        busy = page.get_by_test_id("stStatusWidget").count() + page.get_by_test_id("stSkeleton").count()
        quiet = 0 if busy else quiet + 1
        if time.monotonic() > deadline:
            raise SystemExit("the page kept running")
        page.wait_for_timeout(200)


def dashboard_shot(browser, report_dir: Path) -> None:
    with dashboard(report_dir) as url:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.set_default_timeout(120_000)
        page.goto(url)
        page.get_by_test_id("stSidebarNavItems").get_by_role("link", name="Explanations", exact=True).click()
        page.get_by_role("heading", name="Explanations", level=1).wait_for()
        settle(page)
        save_small(page.screenshot(), HERE / "dashboard.png")
        page.close()


def main(report_dir: str) -> None:
    from playwright.sync_api import sync_playwright

    root = Path(report_dir).resolve()
    if not (root / "report.json").is_file():
        raise SystemExit(f"{root} holds no report.json: run `diagnose models/artifacts/cnn.h5 --out {report_dir}` first")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            report_shot(browser, root)
            dashboard_shot(browser, root)
        finally:
            browser.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/readme-demo")

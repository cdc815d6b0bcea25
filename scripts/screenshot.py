"""Screenshot of the Baseline page with measured metrics, for the README.

Starts `streamlit run app.py` with a throw-away COMPRESSION_HOME, trains the digits/cnn baseline by
clicking the button in headless Debian Chromium, reloads (so the page is served from the store, as a
returning user sees it) and writes a full-page PNG at a 1400x900 viewport.

    .venv/bin/python scripts/screenshot.py [--out assets/screenshot.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e import harness  # noqa: E402

TRAIN_TIMEOUT = 300_000  # ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=harness.REPO_ROOT / "assets" / "screenshot.png")
    args = parser.parse_args(argv)
    if not harness.CHROMIUM.is_file():
        print(f"{harness.CHROMIUM} not found: apt-get install -y chromium", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="compression-home-") as home:
        server = harness.start_server(Path(home))
        try:
            with sync_playwright() as playwright:
                browser = harness.launch_browser(playwright)
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 900})
                    page.set_default_timeout(60_000)
                    harness.open_app(page, server.url)
                    print("training the digits/cnn baseline…", file=sys.stderr)
                    page.get_by_role("button", name="Train and measure baseline").click()
                    page.locator("[data-testid='stMetric']").first.wait_for(timeout=TRAIN_TIMEOUT)
                    harness.wait_idle(page, timeout=TRAIN_TIMEOUT)
                    harness.open_app(page, server.url)  # a fresh load: served from the store
                    page.locator("[data-testid='stMetric']").first.wait_for()
                    if page.locator("[data-testid='stException']").count():
                        print("the page shows an exception; not writing a screenshot", file=sys.stderr)
                        return 1
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(args.out), full_page=True)
                finally:
                    browser.close()
        except Exception:
            print(server.log_tail(), file=sys.stderr)
            raise
        finally:
            harness.stop_server(server)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

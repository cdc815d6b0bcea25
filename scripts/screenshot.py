"""Screenshots of the Baseline and Pruning pages with measured figures, for the README.

Starts `streamlit run app.py` with a throw-away COMPRESSION_HOME, trains the digits/cnn baseline by
clicking the button in headless Debian Chromium, reloads (so the page is served from the store, as a
returning user sees it) and writes a full-page PNG at a 1400x900 viewport; then prunes with
channel-l2 at 0.5 and 0.3 on the Pruning page and writes a second PNG.

    .venv/bin/python scripts/screenshot.py [--out assets/screenshot.png] [--pruning-out assets/pruning.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e import harness  # noqa: E402

TRAIN_TIMEOUT = 300_000  # ms


def prune_twice(page) -> None:
    """On the Pruning page, prune with channel-l2 at 0.5 and at 0.3 (default other settings)."""
    page.locator("[data-testid='stSidebarNavLink']", has_text="Pruning").click()
    harness.wait_idle(page)
    for presses in (0, 4):  # the slider starts at 0.5; each ArrowLeft takes 0.05 off
        page.get_by_test_id("stSelectbox").filter(has_text="Method").first.click()
        page.get_by_role("option", name="channel-l2").click()
        slider = page.get_by_role("slider").first
        slider.focus()
        for _ in range(presses):
            slider.press("ArrowLeft")
        print(f"pruning channel-l2 ({presses} presses)…", file=sys.stderr)
        page.get_by_role("button", name="Prune and measure").click()
        harness.wait_idle(page, timeout=TRAIN_TIMEOUT)
        page.locator("[data-testid='stMetric']").first.wait_for(timeout=TRAIN_TIMEOUT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=harness.REPO_ROOT / "assets" / "screenshot.png")
    parser.add_argument("--pruning-out", type=Path, default=harness.REPO_ROOT / "assets" / "pruning.png")
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
                    prune_twice(page)
                    page.set_viewport_size({"width": 1400, "height": 2100})
                    harness.wait_idle(page)
                    page.screenshot(path=str(args.pruning_out), full_page=True)
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

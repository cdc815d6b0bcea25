"""Screenshots of the app with measured figures, for the README.

Starts the app (`serve.py`, as `make run` does) with a throw-away COMPRESSION_HOME and drives it in headless
Debian Chromium like a user: the Workspace sidebar trains the digits/cnn baseline on its own; the Pruning page prunes with
channel-l2 at 0.5 and 0.3; the Quantization and Distillation pages run their default settings; the Pipeline
page runs its default recipe (channel-l2 0.5 then int8 static). Then it writes one PNG a page, each as tall as
the page's content, at 1400 px wide:

    assets/screenshot.png (Overview), assets/pruning.png, assets/quantization.png, assets/distillation.png,
    assets/pipeline.png, assets/tradeoffs.png

    .venv/bin/python scripts/screenshot.py [--out-dir assets] [--only overview,tradeoffs,...]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e import harness  # noqa: E402

TIMEOUT = 600_000  # ms: training on two busy cores
WIDTH = 1400
FILES = {"overview": "screenshot.png", "pruning": "pruning.png", "quantization": "quantization.png",
         "distillation": "distillation.png", "pipeline": "pipeline.png", "tradeoffs": "tradeoffs.png"}
TITLES = {"overview": "Overview", "pruning": "Pruning", "quantization": "Quantization",
          "distillation": "Distillation", "pipeline": "Pipeline", "tradeoffs": "Trade-offs"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def go(page, name: str) -> None:
    page.locator("[data-testid='stSidebarNavLink']", has_text=TITLES[name]).click()
    harness.wait_idle(page)


def click_and_wait(page, button: str) -> None:
    """Click `button` on the page, then wait until the run it starts has measured and redrawn."""
    target = page.get_by_role("button", name=button)
    if not target.count():
        log(f"  '{button}' not shown (already stored?)")
        return
    target.first.click()
    page.wait_for_selector("[data-testid='stStatusWidget'], [data-testid='stExpander']", timeout=30_000)
    harness.wait_idle(page, timeout=TIMEOUT)
    page.locator("[data-testid='stMain'] [data-testid='stMetric']").first.wait_for(timeout=TIMEOUT)
    harness.wait_idle(page, timeout=TIMEOUT)


def prune_twice(page) -> None:
    """On the Pruning page, prune with channel-l2 at 0.5 and at 0.3 (default other settings)."""
    go(page, "pruning")
    for presses in (0, 4):  # the slider starts at 0.5; each ArrowLeft takes 0.05 off
        page.locator("[data-testid='stMain']").get_by_role("combobox", name="Method", exact=True).click()
        page.get_by_role("option", name=re.compile(r"^channel-l2")).click()
        harness.wait_idle(page)
        slider = page.locator("[data-testid='stMain']").get_by_role("slider").first
        slider.focus()
        for _ in range(presses):
            slider.press("ArrowLeft")
        log(f"pruning channel-l2 ({presses} presses)…")
        click_and_wait(page, "Prune and measure")


def shoot(page, path: Path) -> None:
    """A PNG of the whole page: the viewport grown to the content's height (the main area scrolls, not the
    document, so Playwright's full_page alone would cut it)."""
    harness.wait_idle(page)
    height = page.evaluate("() => Math.max(...[...document.querySelectorAll("
                           "'[data-testid=\"stMain\"], [data-testid=\"stMainBlockContainer\"]')]"
                           ".map(e => e.scrollHeight), 900)")
    page.set_viewport_size({"width": WIDTH, "height": int(height) + 40})
    harness.wait_idle(page)
    page.wait_for_timeout(800)  # plotly animates its first draw
    if page.locator("[data-testid='stException']").count():
        raise RuntimeError(f"the page shows an exception; not writing {path}")
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": WIDTH, "height": 900})
    log(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=harness.REPO_ROOT / "assets")
    parser.add_argument("--only", default=",".join(FILES), help=f"comma-separated subset of {', '.join(FILES)}")
    args = parser.parse_args(argv)
    wanted = [name for name in args.only.split(",") if name]
    unknown = set(wanted) - set(FILES)
    if unknown:
        parser.error(f"unknown page(s): {', '.join(sorted(unknown))}")
    if not harness.CHROMIUM.is_file():
        log(f"{harness.CHROMIUM} not found: apt-get install -y chromium")
        return 2
    from playwright.sync_api import sync_playwright

    args.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="compression-home-") as home:
        server = harness.start_server(Path(home))
        try:
            with sync_playwright() as playwright:
                browser = harness.launch_browser(playwright)
                try:
                    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
                    page.set_default_timeout(120_000)
                    harness.open_app(page, server.url)
                    log("the Workspace sidebar trains the digits/cnn baseline…")
                    page.locator("[data-testid='stSidebar'] [data-testid='stMetric']").first.wait_for(timeout=TIMEOUT)
                    harness.wait_idle(page, timeout=TIMEOUT)
                    prune_twice(page)
                    for name, button in (("quantization", "Quantize and measure"),
                                         ("distillation", "Distil and measure"), ("pipeline", "Run pipeline")):
                        if name in wanted or name == "pipeline":
                            log(f"{name}: running its default settings…")
                            go(page, name)
                            click_and_wait(page, button)
                    for name in wanted:
                        go(page, name)
                        if name == "pruning":  # its settings reset on leaving the page: show channel-l2 at 0.5
                            page.locator("[data-testid='stMain']").get_by_role("combobox", name="Method",
                                                                               exact=True).click()
                            page.get_by_role("option", name=re.compile(r"^channel-l2")).click()
                            harness.wait_idle(page)
                        shoot(page, args.out_dir / FILES[name])
                finally:
                    browser.close()
        except Exception:
            log(server.log_tail())
            raise
        finally:
            harness.stop_server(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())

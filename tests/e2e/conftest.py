"""Fixtures for the real-browser tests: one Streamlit server per session (its own COMPRESSION_HOME),
one headless Debian Chromium, one page shared by the tests in order (they build on each other; each also
runs alone, opening the app and training the baseline itself where it needs them)."""

from __future__ import annotations

import os

import pytest

from tests.e2e import harness


def _require_chromium() -> None:
    if harness.CHROMIUM.is_file():
        return
    reason = f"{harness.CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}; CI must run the e2e tests (.ci/run installs it)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """The app (`serve.py`) with an empty store in a temp COMPRESSION_HOME (server.home)."""
    _require_chromium()  # no point starting the server without a browser
    server = harness.start_server(tmp_path_factory.mktemp("compression_home"))
    try:
        yield server
    finally:
        harness.stop_server(server)
        print(f"\n--- streamlit log (tail) ---\n{server.log_tail(2000)}")


@pytest.fixture(scope="session")
def app_url(server):
    """Base URL of the app under test."""
    return server.url


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory):
    """Where the browser tests save screenshots: $E2E_ARTIFACTS, else a pytest temp folder."""
    folder = os.environ.get("E2E_ARTIFACTS")
    path = harness.Path(folder) if folder else tmp_path_factory.mktemp("e2e_artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def browser():
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = harness.launch_browser(playwright)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def page(browser, app_url):
    """One page for the module's tests, 1400x900, default timeouts generous for a 2-core box."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        context.close()

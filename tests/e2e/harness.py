"""Shared helpers for driving the real app in headless Chromium: used by tests/e2e/conftest.py,
scripts/screenshot.py and bench/app.py. Starts the app (`serve.py`, as `make run` does) on a free port with
its own COMPRESSION_HOME, launches Debian's Chromium (Playwright's own browser download does not work here),
and waits for Streamlit script runs to finish the way Streamlit's own end-to-end suite does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
RUNNING = "[data-testid='stApp'][data-test-script-state='running']"


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log: Path
    home: Path  # its COMPRESSION_HOME: the store the app writes

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, timeout: float = 60.0, app: Sequence[str] = ("serve.py",),
                 port: int | None = None) -> Server:
    """Start the app (or the Streamlit script `app` names, e.g. ("-m", "streamlit", "run", "other.py")) with
    COMPRESSION_HOME=home in its own process group, on `port` (a free one if None); return once
    /_stcore/health is ok."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = home / "streamlit.log"
    env = {**os.environ, "COMPRESSION_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, *app, "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
           "--browser.gatherUsageStats", "false"]
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(process, f"http://127.0.0.1:{port}", log, home)
    try:
        wait_healthy(server.url, process, timeout)
    except RuntimeError as exc:
        stop_process(process)
        raise RuntimeError(f"{exc}:\n{server.log_tail()}") from None
    return server


def wait_healthy(url: str, process: subprocess.Popen, timeout: float) -> None:
    """Return once the Streamlit server at `url` answers /_stcore/health with ok; RuntimeError if `process`
    exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server process exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200 and response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the server was not healthy after {timeout:.0f} s")


def stop_server(server: Server, timeout: float = 10.0) -> None:
    """Terminate the server's process group (SIGTERM, then SIGKILL)."""
    stop_process(server.process, timeout)


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate a process started with start_new_session and its whole group (SIGTERM, then SIGKILL)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout)


def launch_browser(playwright):
    """Debian's Chromium, headless, no network chatter."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


def wait_idle(page, timeout: float = 180_000, settle: float = 300) -> None:
    """Wait until the app's script run has finished (stApp's data-test-script-state is notRunning).

    A click reaches the server asynchronously, so the state may still read notRunning for a moment
    after an action: give a run `settle` ms to start, then wait for it to end."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_selector(RUNNING, state="attached", timeout=settle)
    except PlaywrightTimeout:  # no run started within `settle` ms (or it was already over): fine
        pass
    page.wait_for_selector(IDLE, state="attached", timeout=timeout)


def open_choices(page, scope, label: str, option):
    """Open the select box labelled `label` within `scope` (a combobox in Streamlit 1.67) and return its
    `option` (text or pattern), on screen and not yet clicked. The list closes again when the page scrolls
    under it, which happens now and then in the second after a run (its charts still drawing): then it is
    opened again."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = scope.get_by_role("combobox", name=label, exact=True)
    choice = page.get_by_role("option", name=option, exact=isinstance(option, str))
    for _ in range(3):
        if box.get_attribute("aria-expanded") != "true":
            box.click()
        try:
            choice.wait_for(timeout=3000)
            return choice
        except PlaywrightTimeout:
            print(f"the {label} list closed before its option showed: opening it again", file=sys.stderr)
    choice.wait_for()
    return choice


def open_app(page, url: str, timeout: float = 120_000) -> None:
    """Load the app and wait for its first script run to finish."""
    page.goto(url, wait_until="domcontentloaded", timeout=timeout)
    page.wait_for_selector("[data-testid='stApp']", state="attached", timeout=timeout)
    wait_idle(page, timeout, settle=1000)

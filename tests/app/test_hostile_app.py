"""The app used against its server, through Streamlit's AppTest: an image folder outside the configured data
roots (an absolute path, /proc, a `..` or symlink escape) is refused with one line that reveals nothing about
the server; a folder inside them is read; a store that cannot be opened is one line on the page; uncaught
errors show no details in the browser."""

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit import config as streamlit_config
from streamlit.elements import exception as streamlit_exception
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
FOLDER = "image folder…"


def start(**choices) -> AppTest:
    """A session of the app with the sidebar's `choices` (baseline epochs 1 unless given), run once."""
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in {"epochs": 1, **choices}.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def image_folder(path: Path, classes: int = 2, per_class: int = 12) -> Path:
    for c in range(classes):
        (path / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((8, 8, 3), 40 + 90 * c + i, dtype=np.uint8)
            Image.fromarray(pixels).save(path / f"class{c}" / f"{i}.png")
    return path


def only_error(at: AppTest) -> str:
    """The one error the page shows (in the sidebar's card and, where the page stops on it, in its body)."""
    assert not at.exception, at.exception
    errors = {e.value for e in at.error}
    assert len(errors) == 1, errors
    return errors.pop()


@pytest.fixture
def roots(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "roots"
    root.mkdir()
    monkeypatch.setenv("COMPRESSION_DATA_ROOTS", str(root))
    return root


def test_folders_outside_the_data_roots_are_refused_without_a_word_about_the_server(roots, tmp_path):
    secret = image_folder(tmp_path / "secret-project")
    (roots / "escape").symlink_to(secret, target_is_directory=True)
    messages = set()
    for path in (str(secret), "/proc", "/etc", f"{roots}/../secret-project", str(roots / "escape"),
                 str(tmp_path / "does-not-exist")):
        started = time.monotonic()
        message = only_error(start(dataset_choice=FOLDER, imagefolder_path=path))
        assert time.monotonic() - started < 10  # no walk of /proc: refused before the folder is read
        assert "secret" not in message and str(tmp_path) not in message and "/proc" not in message, message
        messages.add(message)
    assert len(messages) == 1 and "data roots" in messages.pop()  # the same line whether it exists or not


def test_a_folder_inside_the_data_roots_is_read(roots):
    image_folder(roots / "mine")
    at = start(dataset_choice=FOLDER, imagefolder_path=str(roots / "mine"))
    deadline = time.monotonic() + 120
    while not at.sidebar.metric:  # the Workspace trains the folder's baseline on its own
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert time.monotonic() < deadline, "the baseline of the folder never showed"
        time.sleep(1)
        at.run()
    assert {m.label for m in at.sidebar.metric} == {"Accuracy", "Size", "Latency", "FLOPs"}


def test_a_store_that_cannot_be_opened_is_one_line_on_the_page(tmp_path, monkeypatch):
    home = tmp_path / "a-file"
    home.write_text("not a folder")
    monkeypatch.setenv("COMPRESSION_HOME", str(home))
    for page in ("app_pages/overview.py", "app_pages/tradeoffs.py"):
        at = start()
        at.switch_page(page).run()
        assert "is not a folder: point COMPRESSION_HOME at a folder" in only_error(at)


def test_uncaught_errors_show_no_details_in_the_browser(monkeypatch):
    """The app's config (.streamlit/config.toml) as Streamlit itself reads and applies it."""
    monkeypatch.chdir(ROOT)
    streamlit_config.get_config_options(force_reparse=True)
    try:
        assert streamlit_config.get_option("client.showErrorDetails") == "none"
        shown = streamlit_exception._error_detail_visibility(True)
        assert not (shown.show_message or shown.show_trace or shown.show_type)
        assert streamlit_config.get_option("server.address") == "127.0.0.1"  # reachable from this machine only
    finally:
        streamlit_config.get_config_options(force_reparse=True)

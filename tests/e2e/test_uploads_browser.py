"""Bring your own model in the real app, in headless Chromium: an ONNX file put into the sidebar's real file
uploader, named and imported, is measured as the Workspace's baseline and selected, its card on screen."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from compression import imports
from compression.export import export_onnx
from compression.models import build_model
from compression.recipe import Recipe
from compression.store import Store
from tests.e2e.harness import wait_idle
from tests.e2e.test_app_browser import EXCEPTION, TRAIN_TIMEOUT, card_metric, sidebar, with_baseline

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

IMPORT_TIMEOUT = 300_000  # ms: the import's checks, then measuring it, behind any job already running


def test_an_uploaded_onnx_model_is_imported_and_becomes_the_baseline(page, server, app_url, tmp_path, monkeypatch):
    onnx = export_onnx(build_model("cnn", (1, 8, 8), 10).eval(), (1, 8, 8), tmp_path / "tiny.onnx")
    with_baseline(page, app_url)  # the default workspace's baseline first: an import waits for it anyway
    bring = sidebar(page).locator("[data-testid='stExpander']").filter(has_text="Bring your own model")
    bring.locator("summary").click()
    bring.locator("input[type=file]").set_input_files(str(onnx))
    wait_idle(page)
    expect(bring.get_by_text("tiny.onnx")).to_be_visible()
    expect(bring.get_by_role("combobox", name="torchvision architecture")).to_have_count(0)  # ONNX says its own
    name = bring.get_by_label("Name", exact=True)
    name.fill("mine")
    name.press("Enter")
    wait_idle(page)
    bring.get_by_role("button").filter(has_text=re.compile("Import$")).click()

    expect(sidebar(page).get_by_role("combobox", name="Model")).to_have_value("mine", timeout=IMPORT_TIMEOUT)
    expect(card_metric(page, "Accuracy")).to_be_visible(timeout=TRAIN_TIMEOUT)
    wait_idle(page)
    expect(sidebar(page).get_by_text("imported: measured as given")).to_be_visible()
    expect(sidebar(page).get_by_role("spinbutton", name="Baseline epochs", exact=True)).to_be_disabled()
    expect(page.locator(EXCEPTION)).to_have_count(0)
    expect(sidebar(page).locator("[data-testid='stAlertContentError']")).to_have_count(0)

    store = Store(server.home)
    assert imports.stored("mine", store).label() == "imported ONNX tiny.onnx, 1×8×8, 10 classes"
    monkeypatch.setenv("COMPRESSION_HOME", str(server.home))  # Recipe finds the import there (epochs 0)
    assert store.get_result(Recipe(dataset="digits", model="mine").hash) is not None

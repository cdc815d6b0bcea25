"""The real app in headless Chromium: load, train the digits/cnn baseline, reload from the store, prune
on the Pruning page, and the offline error paths. The tests share one server, one store and one page, and run in file order
(each builds on the one before)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.harness import wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

METRICS = ("Test accuracy", "ONNX size", "FLOPs / sample", "Latency p50 · batch 32", "Latency p50 · batch 1")
BUTTON = "Train and measure baseline"
EXCEPTION = "[data-testid='stException']"
TRAIN_TIMEOUT = 240_000  # ms: first torch import plus ~20-60 s of training and measuring on 2 cores


def open_fresh(page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector("[data-testid='stApp']", state="attached")
    wait_idle(page, timeout=120_000, settle=1000)
    expect(page.get_by_role("heading", name="Baseline", exact=True)).to_be_visible()


def metric_value(page, label: str) -> str:
    metric = page.locator("[data-testid='stMetric']").filter(
        has=page.locator("[data-testid='stMetricLabel']", has_text=label))
    return metric.locator("[data-testid='stMetricValue']").inner_text()


def expect_metrics(page) -> None:
    labels = page.locator("[data-testid='stMetricLabel']")
    for label in METRICS:
        expect(labels.filter(has_text=label)).to_be_visible()


def choose(page, label: str, option: str) -> None:
    """Pick `option` in the sidebar selectbox labelled `label` (a combobox in Streamlit 1.67)."""
    page.locator("[data-testid='stSidebar']").get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)
    expect(page.locator("[data-testid='stSidebar']").get_by_role("combobox", name=label)).to_have_value(option)


def test_first_sidebar_change_is_kept(browser, app_url):
    """Must be the first browser session on the fresh server: that is the one that loses its first change."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        open_fresh(page, app_url)
        seed = page.locator("[data-testid='stSidebar']").get_by_role("spinbutton", name="Seed", exact=True)
        seed.fill("3")
        seed.press("Enter")
        wait_idle(page)
        expect(page.locator("[data-testid='stAlert']").first).to_contain_text("seed 3", timeout=5_000)
    finally:
        context.close()


def test_page_loads_with_sidebar(page, app_url):
    open_fresh(page, app_url)
    sidebar = page.locator("[data-testid='stSidebar']")
    expect(sidebar.get_by_role("combobox", name="Data set")).to_have_value("digits")
    expect(sidebar.get_by_role("combobox", name="Model")).to_have_value("cnn")
    expect(sidebar.get_by_role("spinbutton", name="Seed", exact=True)).to_have_value("0")
    expect(sidebar.get_by_role("spinbutton", name="Baseline epochs", exact=True)).to_have_value("20")
    expect(page.get_by_role("button", name=BUTTON)).to_be_visible()
    expect(page.locator("[data-testid='stAlert']").first).to_contain_text("No baseline yet")
    expect(page.locator(EXCEPTION)).to_have_count(0)


def test_train_baseline_shows_metrics(page, app_url):
    page.get_by_role("button", name=BUTTON).click()
    # the status box shows while it trains; then the metrics replace the button
    expect(page.locator("[data-testid='stMetricLabel']").filter(has_text="Test accuracy")).to_be_visible(
        timeout=TRAIN_TIMEOUT)
    wait_idle(page, timeout=TRAIN_TIMEOUT)
    expect(page.locator(EXCEPTION)).to_have_count(0)
    expect_metrics(page)
    accuracy = metric_value(page, "Test accuracy")
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%\s*", accuracy)
    assert match, f"unexpected accuracy text {accuracy!r}"
    assert float(match.group(1)) > 90.0, f"digits/cnn baseline accuracy only {accuracy}"
    assert re.search(r"\d", metric_value(page, "ONNX size")), metric_value(page, "ONNX size")
    assert metric_value(page, "Latency p50 · batch 1").endswith("ms")


def test_reload_serves_stored_result(page, app_url):
    page.reload(wait_until="domcontentloaded")
    page.wait_for_selector("[data-testid='stApp']", state="attached")
    wait_idle(page, timeout=120_000, settle=1000)
    expect_metrics(page)
    expect(page.get_by_role("button", name=BUTTON)).to_have_count(0)
    expect(page.locator(EXCEPTION)).to_have_count(0)


def test_pruning_page_prunes_and_plots(page, app_url):
    page.locator("[data-testid='stSidebarNavLink']", has_text="Pruning").click()
    wait_idle(page)
    expect(page.get_by_role("heading", name="Pruning", exact=True)).to_be_visible()
    page.locator("[data-testid='stMain']").get_by_role("combobox", name="Method", exact=True).click()
    page.get_by_role("option", name=re.compile(r"^channel-l2")).click()
    page.get_by_role("button", name="Prune and measure").click()
    flops = page.locator("[data-testid='stMetricLabel']").filter(has_text="FLOPs")
    expect(flops).to_be_visible(timeout=TRAIN_TIMEOUT)
    wait_idle(page, timeout=TRAIN_TIMEOUT)
    assert float(metric_value(page, "FLOPs").rstrip("×")) < 0.35
    expect(page.locator("[data-testid='stPlotlyChart']")).to_have_count(2)
    expect(page.locator(EXCEPTION)).to_have_count(0)
    page.locator("[data-testid='stSidebarNavLink']", has_text="Baseline").click()
    wait_idle(page)
    expect_metrics(page)


def test_offline_mnist_shows_clear_error(page, app_url):
    choose(page, "Data set", "mnist")
    expect(page.locator("[data-testid='stAlert']").first).to_contain_text("mnist")
    page.get_by_role("button", name=BUTTON).click()
    error = page.locator("[data-testid='stAlertContentError']")
    expect(error).to_be_attached(timeout=TRAIN_TIMEOUT)
    wait_idle(page, timeout=TRAIN_TIMEOUT)
    expect(page.locator("[data-testid='stExpander']", has_text="Could not finish")).to_be_visible()
    expect(error).to_contain_text("mnist")
    expect(error).to_contain_text("MNIST")  # the folder it looked in: .../data/MNIST/raw
    expect(error).to_contain_text("files not found in")
    expect(page.locator(EXCEPTION)).to_have_count(0)
    expect(page.locator("[data-testid='stMetric']")).to_have_count(0)


def test_error_message_visible_without_expanding(page, app_url):
    expect(page.locator("[data-testid='stAlertContentError']")).to_be_visible(timeout=2_000)


def test_missing_image_folder_shows_clear_error(page, app_url):
    choose(page, "Data set", "image folder…")
    folder = page.locator("[data-testid='stSidebar']").get_by_label("Folder of class sub-folders")
    folder.fill("/nonexistent/my-images")
    folder.press("Enter")
    wait_idle(page)
    error = page.locator("[data-testid='stAlertContentError']")
    button = page.get_by_role("button", name=BUTTON)
    if button.count():  # the page may check the recipe up front (no button) or only when asked to train
        button.click()
    expect(error).to_be_attached(timeout=TRAIN_TIMEOUT)
    wait_idle(page, timeout=TRAIN_TIMEOUT)
    expect(error).to_contain_text("imagefolder: /nonexistent/my-images does not exist")
    expect(page.locator(EXCEPTION)).to_have_count(0)
    expect(page.locator("[data-testid='stMetric']")).to_have_count(0)

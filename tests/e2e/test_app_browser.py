"""The real app in headless Chromium, on one server with an empty store: the Workspace sidebar trains the
digits/cnn baseline on its own, every page renders, a pruning experiment runs through the UI and lands on the
Pareto chart, two sessions run experiments at the same time, work survives leaving the page, a stored recipe
shows at once, budget answers are deployable by default, a small search runs from the Search page, bad settings are clear messages, and image folders outside the data roots are refused. The tests
share one server, one store and (mostly) one page, and run in file order (each builds on the one before)."""

from __future__ import annotations

import re
import time
from dataclasses import replace

import pytest
from playwright.sync_api import expect

from compression import describe
from compression.recipe import PruneSpec, QuantSpec, Recipe
from compression.store import Store
from tests.e2e.harness import open_choices, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXCEPTION = "[data-testid='stException']"
TRAIN_TIMEOUT = 300_000  # ms: first torch import plus ~20-60 s of training and measuring on 2 busy cores
CARD = ("Accuracy", "Size", "Latency", "FLOPs")
BASE = Recipe()  # the sidebar's defaults: digits / cnn, seed 0, 20 epochs
PAGES = {"Overview": "Compression Explorer", "Pruning": "Pruning", "Quantization": "Quantization",
         "Distillation": "Distillation", "Pipeline": "Pipeline", "Trade-offs": "Trade-offs", "Sweep": "Sweep",
         "Search": "Search", "Classic experiments": "Classic experiments"}


def sidebar(page):
    return page.locator("[data-testid='stSidebar']")


def main(page):
    return page.locator("[data-testid='stMain']")


def open_app(page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector("[data-testid='stApp']", state="attached")
    wait_idle(page, timeout=120_000, settle=1000)


def shown(page, url: str) -> None:
    """Open the app in `page` unless it is open already (a test run alone starts on a blank page)."""
    if not page.locator("[data-testid='stApp']").count():
        open_app(page, url)


def with_baseline(page, url: str) -> None:
    """The app open in `page` with the Workspace's baseline card on screen (trained first on a fresh store)."""
    shown(page, url)
    expect(card_metric(page, "Accuracy")).to_be_visible(timeout=TRAIN_TIMEOUT)
    wait_idle(page)


def go(page, name: str) -> None:
    """Open a page by its sidebar link and wait for its script run."""
    page.locator("[data-testid='stSidebarNavLink']", has_text=name).click()
    wait_idle(page)
    expect(main(page).locator("h1").filter(has_text=re.compile(f"^{re.escape(PAGES[name])}$"))).to_be_visible()


def card_metric(page, label: str):
    return sidebar(page).locator("[data-testid='stMetricLabel']").filter(has_text=re.compile(f"^{label}$"))


def choose(page, scope, label: str, option: str | re.Pattern) -> None:
    """Pick `option` in the selectbox labelled `label` within `scope`, and wait for the run it starts."""
    open_choices(page, scope, label, option).click()
    wait_idle(page)


def chart_hashes(page) -> set[str]:
    """Recipe hashes of every point on the page's plotly charts (each point carries its hash)."""
    return set(page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
        .flatMap(plot => (plot.data || []).flatMap(trace => (trace.customdata || [])
        .map(d => Array.isArray(d) ? d[0] : null))).filter(Boolean)"""))


def test_first_sidebar_change_is_kept(browser, app_url):
    """Must be the first browser session on the fresh server: that is the one that loses its first change."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        open_app(page, app_url)
        choose(page, sidebar(page), "Data set", "image folder…")
        # the choice is kept (a dropped change reverts the box to digits), then its run draws the folder field:
        # generous timeouts, the fresh server's first runs share two cores with its worker's first job
        expect(sidebar(page).get_by_role("combobox", name="Data set")).to_have_value("image folder…",
                                                                                     timeout=30_000)
        expect(sidebar(page).get_by_label("Folder of class sub-folders")).to_be_visible(timeout=60_000)
        expect(page.locator(EXCEPTION)).to_have_count(0)
    finally:
        context.close()


def test_workspace_trains_its_baseline_with_a_progress_bar(page, app_url):
    open_app(page, app_url)
    expect(sidebar(page).get_by_role("combobox", name="Data set")).to_have_value("digits")
    expect(sidebar(page).get_by_role("combobox", name="Model")).to_have_value("cnn")
    expect(sidebar(page).get_by_role("spinbutton", name="Seed", exact=True)).to_have_value("0")
    expect(sidebar(page).get_by_role("spinbutton", name="Baseline epochs", exact=True)).to_have_value("20")
    expect(main(page).get_by_role("heading", name="Compression Explorer")).to_be_visible()
    # a fresh store: the card trains the baseline on its own (the first session started it), then shows it
    expect(card_metric(page, "Accuracy")).to_be_visible(timeout=TRAIN_TIMEOUT)
    wait_idle(page)
    for label in CARD:
        expect(card_metric(page, label)).to_be_visible()
    accuracy = sidebar(page).locator("[data-testid='stMetric']").first.locator("[data-testid='stMetricValue']")
    assert float(accuracy.inner_text().rstrip("%")) > 90.0
    expect(main(page).locator("[data-testid='stMetricLabel']").filter(has_text="Test accuracy")).to_be_visible()
    expect(main(page).locator("[data-testid='stPlotlyChart']")).to_have_count(1)  # the Pareto chart
    expect(page.locator(EXCEPTION)).to_have_count(0)


def test_reload_serves_the_baseline_from_the_store(page, app_url):
    with_baseline(page, app_url)
    page.reload(wait_until="domcontentloaded")
    page.wait_for_selector("[data-testid='stApp']", state="attached")
    wait_idle(page, timeout=60_000, settle=1000)
    for label in CARD:
        expect(card_metric(page, label)).to_be_visible(timeout=5_000)
    expect(sidebar(page).locator("[data-testid='stProgress']")).to_have_count(0)


def test_every_page_renders(page, app_url):
    with_baseline(page, app_url)
    links = page.locator("[data-testid='stSidebarNavLink']").all_inner_texts()
    assert [link.split("\n")[-1] for link in links] == list(PAGES)  # a page missing from the navigation fails
    for name in PAGES:
        go(page, name)
        expect(page.locator(EXCEPTION)).to_have_count(0)
    go(page, "Overview")


def test_no_page_asks_an_outside_host_for_anything(browser, app_url):
    """The browser's network log over every page: nothing but the app's own server (the favicon included)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    asked: list[str] = []
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.on("request", lambda request: asked.append(request.url))
        with_baseline(page, app_url)
        for name in PAGES:
            go(page, name)
        icons = page.eval_on_selector_all("link[rel*='icon']", "links => links.map(link => link.href)")
    finally:
        context.close()
    assert icons and all(icon.startswith(app_url) for icon in icons)
    outside = [url for url in asked if not url.startswith((app_url, "data:", "blob:"))]
    assert not outside, outside


def test_a_page_opened_by_its_url_comes_with_the_workspace_and_the_navigation(browser, page, app_url):
    """A bookmarked page URL runs through the entry page: its Workspace sidebar and titled navigation, not the
    page file alone (what Streamlit does for a folder called `pages/`)."""
    with_baseline(page, app_url)  # stored, so that the card shows
    session = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        for name, path in (("Pruning", "pruning"), ("Trade-offs", "tradeoffs")):
            session.goto(f"{app_url}/{path}", wait_until="domcontentloaded")
            expect(main(session).locator("h1").filter(has_text=re.compile(f"^{re.escape(PAGES[name])}$"))
                   ).to_be_visible(timeout=60_000)
            wait_idle(session)
            expect(sidebar(session).get_by_role("heading", name="Workspace")).to_be_visible()
            expect(card_metric(session, "Accuracy")).to_be_visible()
            links = session.locator("[data-testid='stSidebarNavLink']").all_inner_texts()
            assert [link.split("\n")[-1] for link in links] == list(PAGES)
    finally:
        session.close()


def test_pruning_experiment_through_the_ui_lands_on_the_pareto_chart(page, server, artifacts):
    with_baseline(page, server.url)
    go(page, "Pruning")
    choose(page, main(page), "Method", re.compile(r"^channel-l2"))
    page.get_by_role("button", name="Prune and measure").click()
    flops = main(page).locator("[data-testid='stMetricLabel']").filter(has_text="FLOPs")
    expect(flops).to_be_visible(timeout=TRAIN_TIMEOUT)
    wait_idle(page, timeout=TRAIN_TIMEOUT)
    expect(page.locator(EXCEPTION)).to_have_count(0)
    value = main(page).locator("[data-testid='stMetric']").filter(
        has=page.locator("[data-testid='stMetricLabel']", has_text="FLOPs")).locator("[data-testid='stMetricValue']")
    assert float(value.inner_text().rstrip("×")) < 0.35
    pruned = replace(BASE, prune=PruneSpec("channel-l2", 0.5))
    assert Store(server.home).get_result(pruned.hash) is not None

    go(page, "Trade-offs")
    expect(main(page).locator("[data-testid='stPlotlyChart']").first).to_be_visible()
    expect(main(page).get_by_text("Pareto frontier").first).to_be_attached()
    assert {BASE.hash, pruned.hash} <= chart_hashes(page)
    page.screenshot(path=str(artifacts / "tradeoffs.png"), full_page=True)
    go(page, "Overview")
    assert pruned.hash in chart_hashes(page)
    page.screenshot(path=str(artifacts / "overview.png"), full_page=True)


def test_budget_answers_are_deployable_until_simulated_results_are_let_in(page, server):
    """A simulated 2-bit model, the smallest result, answers "smallest within 100 points" only once the toggle
    lets simulated results in, and then flagged as not deployable."""
    from compression import pipeline

    with_baseline(page, server.url)
    pipeline.run(replace(BASE, quant=QuantSpec("fake", bits=2)), Store(server.home))
    go(page, "Trade-offs")
    points = main(page).get_by_label("3 · Smallest within … points of the baseline")
    points.fill("100")
    points.press("Enter")
    wait_idle(page)
    expect(main(page).get_by_text("Budget questions")).to_be_visible()
    assert "not deployable" not in main(page).inner_text()
    main(page).get_by_text("Let simulated results answer and join the frontier").click()
    wait_idle(page)
    expect(main(page).get_by_text("simulated: not deployable").first).to_be_visible()
    expect(page.locator(EXCEPTION)).to_have_count(0)


def test_two_sessions_run_experiments_at_the_same_time(browser, server):
    contexts = [browser.new_context(viewport={"width": 1400, "height": 900}) for _ in range(2)]
    try:
        pages = [context.new_page() for context in contexts]
        methods = ("l1-unstructured", "global-unstructured")
        for page in pages:
            page.set_default_timeout(60_000)
            open_app(page, server.url + "/pruning")
        for page, method in zip(pages, methods):
            choose(page, main(page), "Method", re.compile(f"^{method}"))
            finetune = main(page).get_by_role("slider", name="Fine-tune epochs per round")
            finetune.focus()
            finetune.press("Home")  # no fine-tuning: the test is about two sessions, not about accuracy
            wait_idle(page)
            expect(finetune).to_have_value("0")
        for page in pages:  # both start before either finishes
            page.get_by_role("button", name="Prune and measure").click()
        for page, method in zip(pages, methods):
            expect(main(page).get_by_role("heading", name=re.compile(f"^{method} at 50%"))).to_be_visible(
                timeout=TRAIN_TIMEOUT)
            wait_idle(page, timeout=TRAIN_TIMEOUT)
            expect(page.locator(EXCEPTION)).to_have_count(0)
        store = Store(server.home)
        for method in methods:
            assert store.get_result(replace(BASE, prune=PruneSpec(method, 0.5, finetune_epochs=0)).hash), method
    finally:
        for context in contexts:
            context.close()


def test_work_goes_on_when_its_page_is_left_and_is_served_when_chosen_again(page, server):
    with_baseline(page, server.url)
    go(page, "Pipeline")  # defaults: channel-l2 50 % (stored by the pruning test) then int8 static: not measured
    recipe = replace(BASE, prune=PruneSpec("channel-l2", 0.5), quant=QuantSpec("int8-static"))
    expect(main(page).get_by_text(describe.recipe(recipe))).to_be_visible()
    page.get_by_role("button", name="Run pipeline").click()
    expect(main(page).locator("[data-testid='stExpander']").first).to_be_visible()  # its status box
    page.locator("[data-testid='stSidebarNavLink']", has_text="Overview").click()  # leave while it runs
    deadline = time.monotonic() + TRAIN_TIMEOUT / 1000
    store = Store(server.home)
    while store.get_result(recipe.hash) is None:
        assert time.monotonic() < deadline, "the pipeline never finished after its page was left"
        time.sleep(1)
    # the "Still running" bar goes with its next poll (work of another page: no redraw of the whole app)
    expect(page.get_by_text(re.compile("^Still running"))).to_have_count(0, timeout=30_000)
    wait_idle(page)
    go(page, "Pipeline")  # chosen again: shown from the store at once, nothing to run
    expect(main(page).locator("[data-testid='stMetricLabel']").filter(has_text="Test accuracy")).to_be_visible(
        timeout=5_000)
    expect(page.get_by_role("button", name="Run pipeline")).to_have_count(0)
    expect(page.locator(EXCEPTION)).to_have_count(0)


SMALL_SPACE = '{"fixed": {"order": ["quant"]}, "ranges": {"quant.mode": ["int8-dynamic", "fp16"]}}'


def test_the_search_page_runs_a_small_search_and_draws_its_frontier(page, server):
    """Two trials over post-training formats alone (seconds each), run as a job on the server's worker: the
    frontier, its table and the hypervolume curve appear once it ends."""
    with_baseline(page, server.url)
    go(page, "Search")
    trials = main(page).get_by_role("spinbutton", name="Trials", exact=True)
    trials.fill("2")
    trials.press("Enter")
    wait_idle(page)
    main(page).get_by_text("Narrow the space (JSON)").click()
    narrowing = main(page).get_by_role("textbox", name="Fixed fields and ranges", exact=True)
    narrowing.fill(SMALL_SPACE)
    narrowing.press("Control+Enter")
    wait_idle(page)
    expect(main(page).get_by_text(re.compile(r"· 2 trial\(s\) ·"))).to_be_visible()
    main(page).get_by_role("button", name="Search", exact=True).click()
    expect(main(page).get_by_role("heading", name=re.compile("^Frontier of "))).to_be_visible(timeout=TRAIN_TIMEOUT)
    wait_idle(page)
    complete = main(page).locator("[data-testid='stMetric']").filter(has_text="Complete")
    expect(complete.locator("[data-testid='stMetricValue']")).to_have_text("2")
    expect(main(page).locator("[data-testid='stPlotlyChart']")).to_have_count(2)  # the front, the hypervolume
    expect(page.locator(EXCEPTION)).to_have_count(0)


def test_offline_mnist_is_a_clear_error(page, app_url):
    shown(page, app_url)
    go(page, "Overview")
    choose(page, sidebar(page), "Data set", "mnist")
    error = sidebar(page).locator("[data-testid='stAlertContentError']")
    expect(error).to_contain_text("files not found in", timeout=TRAIN_TIMEOUT)
    wait_idle(page)
    expect(error).to_contain_text("MNIST")  # the folder it looked in: .../data/MNIST/raw
    expect(main(page).locator("[data-testid='stAlertContentError']")).to_contain_text("mnist")
    expect(page.locator(EXCEPTION)).to_have_count(0)
    page.locator("[data-testid='stSidebarNavLink']", has_text="Pruning").click()  # it needs the baseline:
    wait_idle(page)  # it says why it cannot go on
    expect(main(page).locator("[data-testid='stAlertContentError']")).to_contain_text("files not found")
    expect(page.locator(EXCEPTION)).to_have_count(0)


def image_folder_error(page, path: str):
    """Type `path` as the Workspace's image folder; the error it shows, once its run has ended."""
    folder = sidebar(page).get_by_label("Folder of class sub-folders")
    folder.fill(path)
    folder.press("Enter")
    wait_idle(page)
    return page.locator("[data-testid='stAlertContentError']").first


def test_image_folders_outside_the_data_roots_are_refused_without_a_word_about_the_server(page, app_url, server):
    """The server's data root is its store's data folder: /proc, a folder elsewhere (existing or not) and a
    `..` escape get one line that names no path, with no walk of the folder (no training starts)."""
    shown(page, app_url)
    choose(page, sidebar(page), "Data set", "image folder…")
    secret = server.home.parent / "secret-images"
    (secret / "cat").mkdir(parents=True, exist_ok=True)
    for path in ("/proc", "/nonexistent/my-images", str(secret), f"{server.home}/data/../../secret-images"):
        started = time.monotonic()
        error = image_folder_error(page, path)
        expect(error).to_have_text("imagefolder: only folders inside the server's data roots can be read "
                                   "(set by COMPRESSION_DATA_ROOTS)")
        assert time.monotonic() - started < 10, path  # refused, not walked (the refusal itself: < 1 ms)
        expect(page.locator(EXCEPTION)).to_have_count(0)
        expect(sidebar(page).locator("[data-testid='stMetric']")).to_have_count(0)
        expect(sidebar(page).locator("[data-testid='stProgress']")).to_have_count(0)  # nothing trains


def test_missing_image_folder_inside_the_data_roots_is_a_clear_error(page, app_url, server):
    shown(page, app_url)
    choose(page, sidebar(page), "Data set", "image folder…")
    missing = server.home / "data" / "my-images"
    expect(image_folder_error(page, str(missing))).to_contain_text(f"imagefolder: {missing} does not exist")
    expect(page.locator(EXCEPTION)).to_have_count(0)
    expect(sidebar(page).locator("[data-testid='stMetric']")).to_have_count(0)

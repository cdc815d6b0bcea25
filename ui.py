"""Streamlit helpers shared by the pages: the sidebar's choices, progress display, number formatting.
No computation here: everything measured comes from compression/."""

from collections.abc import Callable
from typing import Any

import streamlit as st

from compression.catalog import DATASETS, IMAGEFOLDER, MODELS
from compression.errors import CompressionError
from compression.recipe import Recipe
from compression.train import Progress, ProgressFn

IMAGEFOLDER_CHOICE = "image folder…"


def sidebar() -> None:
    """The shared choices every page reads: data set (or an image folder), model, seed, epochs."""
    with st.sidebar:
        st.header("Experiment")
        choice = st.selectbox("Data set", (*DATASETS, IMAGEFOLDER_CHOICE), key="dataset_choice",
                              help="digits ships with scikit-learn and works offline; the others download once.")
        if choice == IMAGEFOLDER_CHOICE:
            st.text_input("Folder of class sub-folders", key="imagefolder_path", placeholder="/data/my-images")
        st.selectbox("Model", MODELS, key="model")
        st.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="seed",
                        help="Fixes the data split, the initial weights and the training order.")
        st.number_input("Baseline epochs", min_value=1, max_value=200, value=Recipe.epochs, step=1, key="epochs")


def baseline_recipe() -> Recipe:
    """The baseline Recipe the sidebar describes."""
    choice = st.session_state.get("dataset_choice", DATASETS[0])
    dataset = IMAGEFOLDER + st.session_state.get("imagefolder_path", "") if choice == IMAGEFOLDER_CHOICE else choice
    return Recipe(dataset=dataset, model=st.session_state.get("model", MODELS[0]),
                  seed=int(st.session_state.get("seed", 0)), epochs=int(st.session_state.get("epochs", Recipe.epochs)))


def progress_reporter(status) -> Callable[[Progress], None]:
    """A progress callback that drives a progress bar and writes stage messages into `status`."""
    bar = st.progress(0.0)

    def report(event: Progress) -> None:
        if event.message:
            status.write(f"**{event.stage}** — {event.message}")
        else:
            bar.progress(event.fraction, text=f"{event.stage}: epoch {event.epoch}/{event.epochs} · "
                                              f"loss {event.loss:.3f} · train accuracy {event.accuracy:.1%}")
    return report


def run_in_status(label: str, work: Callable[[ProgressFn], Any]) -> None:
    """Run `work(progress)` inside an st.status with a progress bar; on bad input show the one-line error
    and stop, on success rerun so the page redraws from the store."""
    with st.status(label, expanded=True) as status:
        try:
            work(progress_reporter(status))
        except CompressionError as exc:
            status.update(label="Could not finish", state="error", expanded=True)
            st.error(str(exc))
            st.stop()
        status.update(label="Measured and stored", state="complete", expanded=False)
    st.rerun()


def valid_recipe() -> Recipe:
    """The sidebar's baseline Recipe, or a one-line error and a stopped page if it cannot run."""
    recipe = baseline_recipe()
    try:
        recipe.validate()
    except CompressionError as exc:
        st.error(str(exc))
        st.stop()
    return recipe


def fmt_bytes(n: float) -> str:
    """Bytes as B / KB / MB / GB (powers of 1024)."""
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GB"


def fmt_count(n: float) -> str:
    """A count with a k / M / G suffix."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:,.2f} {unit}"
    return f"{n:,.0f}"

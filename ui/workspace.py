"""The Workspace every page reads: the sidebar's data set (or image folder), model, seed and baseline epochs;
the baseline Recipe they describe; the baseline's card, which trains a baseline that is not stored yet in a
background job; and the stored baseline network and data set images, loaded once and shared (read-only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from compression import describe, folders, settings, tasks
from compression.catalog import BASELINE_EPOCHS, DATASETS, IMAGEFOLDER, MODELS, SEEDS, imagefolder_path
from compression.errors import CompressionError
from compression.recipe import Recipe
from compression.store import Store
from ui import jobs, metrics, uploads
from ui.forms import PERSIST

if TYPE_CHECKING:  # torch: loaded by the pages that show a model, not by the sidebar
    from torch import nn

    from compression.data import SampleImages

IMAGEFOLDER_CHOICE = "image folder…"
ROOT = Path(__file__).resolve().parents[1]


def store() -> Store:
    """The store this server writes to ($COMPRESSION_HOME)."""
    return Store()


def sidebar() -> None:
    """The Workspace: data set (or an image folder, or an uploaded zip of one), model (built in or imported),
    seed, baseline epochs, the baseline's card, and a model to bring (ui/uploads.py). A
    workspace whose baseline is not stored starts training it at once (in the background, with a progress bar
    on the card); a stored one shows instantly."""
    st.html(ROOT / "assets" / "style.css")
    with st.sidebar:
        st.header("Workspace")
        choice = st.selectbox("Data set", (*DATASETS, IMAGEFOLDER_CHOICE), key="dataset_choice",
                              help="digits ships with scikit-learn and works offline; the others download once.")
        if choice == IMAGEFOLDER_CHOICE:
            st.text_input("Folder of class sub-folders", key="imagefolder_path", placeholder="/data/my-images",
                          **PERSIST)
            uploads.images_upload()
        uploads.select_imported(store())
        model = st.selectbox("Model", uploads.model_names(store()), key="model", help=uploads.model_help(store()))
        imported = uploads.is_imported(model, store())
        left, right = st.columns(2)
        left.number_input("Seed", min_value=int(SEEDS.low), max_value=int(SEEDS.high), value=Recipe.seed, step=1,
                          key="seed", help="Fixes the data split, the initial weights and the training order.")
        right.number_input("Baseline epochs", min_value=int(BASELINE_EPOCHS.low), max_value=int(BASELINE_EPOCHS.high),
                           value=Recipe.epochs, step=1, key="epochs", disabled=imported)
        if imported:
            st.caption(uploads.imported_note(model, store()))
        baseline_card()
        uploads.model_upload(baseline_recipe().dataset, store())


def baseline_recipe() -> Recipe:
    """The baseline Recipe the sidebar describes: an image folder's keyed by its contents now, once the folder
    passes `check` (until then it is left unkeyed, and `check` says what is wrong)."""
    choice = st.session_state.get("dataset_choice", DATASETS[0])
    dataset = IMAGEFOLDER + st.session_state.get("imagefolder_path", "") if choice == IMAGEFOLDER_CHOICE else choice
    recipe = Recipe(dataset=dataset, model=st.session_state.get("model", MODELS.names[0]),
                    seed=int(st.session_state.get("seed", Recipe.seed)),
                    epochs=int(st.session_state.get("epochs", Recipe.epochs)))
    if not recipe.dataset.startswith(IMAGEFOLDER):
        return recipe
    try:
        check(recipe)
        return folders.pinned(recipe)
    except CompressionError:
        return recipe


def check(recipe: Recipe) -> None:
    """Raise CompressionError unless `recipe` may run on this server: an image folder must lie inside the data
    roots (checked first, so that a folder elsewhere gets the same line whether it exists or not), then the
    recipe's own checks. The CLI reads any folder; a web page only these."""
    if recipe.dataset.startswith(IMAGEFOLDER) and recipe.dataset[len(IMAGEFOLDER):].strip():
        try:
            path = imagefolder_path(recipe.dataset)
        except RuntimeError:  # '~someone' without a home
            raise CompressionError(settings.OUTSIDE_ROOTS) from None
        settings.check_within_roots(path, settings.data_roots())
    recipe.validate()


def page_head(title: str, lead: str) -> Recipe:
    """A page's title and lead paragraph over the sidebar's valid baseline Recipe (see valid_recipe)."""
    recipe = valid_recipe()
    st.title(title)
    st.caption(lead)
    return recipe


def valid_recipe() -> Recipe:
    """The sidebar's baseline Recipe, or a one-line error and a stopped page if it cannot run (bad settings,
    or its baseline could not be trained: e.g. a data set that is not on disk and cannot download)."""
    recipe = baseline_recipe()
    try:
        check(recipe)
    except CompressionError as exc:
        st.error(str(exc))
        st.stop()
    if (error := baseline_error(recipe)) is not None:
        st.error(error)
        st.stop()
    return recipe


def baseline_job(recipe: Recipe) -> jobs.Job | None:
    """The job training `recipe`'s baseline in the store's queue, running or finished, if any."""
    return jobs.find_job(recipe.baseline().hash)


def baseline_error(recipe: Recipe) -> str | None:
    """Why `recipe`'s baseline could not be trained (its job's one-line error), while it is not stored."""
    job = baseline_job(recipe)
    if job is not None and job.error and store().get_result(recipe.baseline().hash) is None:
        return job.error
    return None


def _train_baseline(recipe: Recipe) -> jobs.Job:
    """Start (or join) the job training `recipe`'s baseline. It has no owner, so no session can cancel it: the
    sidebar starts it by itself for everyone on this workspace, and every other job needs it first."""
    return jobs.start_job(recipe.baseline().hash, f"Training the {describe.workspace(recipe)} baseline",
                          tasks.run_recipe, recipe.baseline(), str(store().root))


def baseline_card() -> None:
    """The workspace baseline's card: its measured figures, its training progress, or why it cannot train."""
    recipe = baseline_recipe()
    try:
        check(recipe)
    except CompressionError as exc:
        st.error(str(exc))
        return
    result = store().get_result(recipe.hash)
    with st.container(border=True, key="baseline_card"):
        st.markdown("**Baseline**")
        if result is not None:
            metrics.baseline_card(result)
            return
        job = baseline_job(recipe)
        if job is not None and job.error:
            st.error(job.error)
            if st.button("Try again", key="baseline_retry"):
                _train_baseline(recipe)
                st.rerun()
            return
        if job is None or not job.running:
            job = _train_baseline(recipe)
        st.fragment(_training_progress, run_every=1.0)(job)


def _training_progress(job: jobs.Job) -> None:
    """Polled every second while the baseline trains; redraws the whole app once it is stored."""
    if not job.refresh().running:
        st.rerun()
    st.progress(job.fraction, text=job.status_text())
    st.caption(f"Training and measuring once; stored for every later visit. {job.elapsed():.0f} s so far.")


@st.cache_resource(max_entries=4, show_spinner=False)
def _cached_baseline(root: str, training_key: str, recipe_json: str) -> nn.Module:
    from compression import pipeline

    recipe = Recipe.from_dict(json.loads(recipe_json))
    splits = pipeline.splits_for(recipe)
    return pipeline.baseline_model(Store(root), recipe, splits)


def without_torch_form(recipe: Recipe, what: str) -> bool:
    """Whether the workspace's model is a runtime-only import (an ONNX graph with no torch form), saying on the
    page that `what` needs one and why it has none."""
    reason = MODELS[recipe.model].runtime_only
    if reason is not None:
        st.info(f"{what} needs the model in torch; {recipe.model} runs in onnxruntime only ({reason}). Its "
                "post-training formats (int8-static, int8-dynamic, fp16) are measured on the Quantization page.")
    return reason is not None


def trained_baseline(recipe: Recipe) -> nn.Module | None:
    """The trained baseline network of `recipe` from the store (never trains: None if not there yet). Cached
    and shared across sessions: read it, or `copy.deepcopy` it before changing anything."""
    from compression import pipeline

    if pipeline.stored_weights(store(), recipe.baseline()) is None:
        return None
    base = recipe.baseline()
    return _cached_baseline(str(settings.home()), base.training_key, json.dumps(base.to_dict(), sort_keys=True))


@st.cache_data(show_spinner=False, max_entries=32)
def sample_images(dataset: str, seed: int, split: str = "train", classes: int = 10, index: int = 0) -> SampleImages:
    """compression.data.sample_images of the workspace's data set (loaded once per process, shared with the
    jobs), cached per choice."""
    from compression import data, pipeline

    return data.sample_images(pipeline.load_splits(dataset, seed), split, classes, index)

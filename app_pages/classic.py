"""Classic experiments page: rerun a published result at the user's command — Hinton et al.'s MNIST distillation,
the pruning and quantization stages of Han et al.'s Deep Compression — with the published figures beside ours,
each labelled measured / computed / published, our test accuracy's 95 % interval, and why they differ.

The run is a background job (compression/tasks.py `classic`): a rerun or another page does not stop it, and its
result is stored, so it shows at once on the next visit. Offline, the page says which files to fetch."""

import pandas as pd
import streamlit as st

from compression import classic, data, tasks
from compression.errors import CompressionError
from compression.jobs import DEFAULT_TIMEOUT, TIMEOUT_ENV
from ui import progress
from ui import workspace as ws
from ui.forms import PERSIST

LEAD = ("Two published results, rerun here at your command with this project's pipeline: the paper's figures beside "
        "ours, each of ours measured in onnxruntime on the 10,000 MNIST test images, or computed from measured "
        "figures, and said which. The classroom setting trains a few epochs; the paper setting trains for hours.")
COLUMNS = {"what": "Quantity", "published": "Published", "ours": "Ours", "source": "Ours is",
           "interval": "95 % interval (our test accuracy)", "note": "Note"}


def choose() -> classic.ClassicRequest:
    """The experiment and setting widgets, and the request they make."""
    name = st.segmented_control("Experiment", list(classic.EXPERIMENTS), default="hinton", required=True,
                                key="classic_experiment", format_func=lambda n: classic.EXPERIMENTS[n].title,
                                **PERSIST)
    experiment = classic.EXPERIMENTS[name]
    st.markdown(f"**The paper.** {experiment.claim}")
    st.caption(f"[{experiment.citation}]({experiment.link})")
    with st.expander("What differs from the paper"):
        st.markdown("\n".join(f"- {line}" for line in experiment.differences))
    labels = {s.name: f"{s.name} — {', '.join(f'{role} {n}' for role, n in s.epochs.items())} epochs: {s.note}"
              for s in experiment.settings}
    setting = st.radio("Setting", list(labels), format_func=labels.get, key=f"classic_setting_{name}", **PERSIST)
    if setting == "paper":
        estimate = classic.paper_estimate(name, ws.store())
        timed = (f"{classic.duration(estimate)} here, by the epoch times of the classroom run" if estimate is not None
                 else "hours here (run the classroom setting first for an estimate from its epoch times)")
        st.caption(f"The paper setting trains for {timed}. A job from this page stops after {TIMEOUT_ENV} seconds "
                   f"(default {DEFAULT_TIMEOUT / 3600:g} h); `python -m compression classic {name} --setting paper` "
                   "has no limit, and its stored result shows here.")
    return classic.ClassicRequest(name, setting)


def offline_note(request: classic.ClassicRequest) -> None:
    """Where the data set is not on disk: what a run does, and which files to fetch without a network."""
    for dataset in sorted({r.dataset for r in request.recipes().values()}):
        missing = data.missing_files(dataset)
        if missing is not None:
            st.warning(f"MNIST is not on this machine yet: a run downloads it first. Without a network, fetch the "
                       f"files yourself — {missing}.", icon=":material/cloud_off:")


def show(result: classic.ClassicResult) -> None:
    """A finished run: ours beside the published figures, why they differ, and which setting produced them."""
    rows = pd.DataFrame([{column: getattr(row, field) for field, column in COLUMNS.items()} for row in result.rows])
    st.table(rows.set_index(COLUMNS["what"]))  # wraps its text: every row readable without scrolling
    st.markdown("**Why ours differ**\n\n" + "\n".join(f"- {line}" for line in result.why))
    epochs = ", ".join(f"{role} {n}" for role, n in result.epochs.items())
    timed = ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in result.epoch_seconds.items())
    st.caption(f"Produced by the **{result.setting}** setting ({epochs} epochs, seed {result.seed}) in "
               f"{result.seconds:,.0f} s on {result.test_images:,} test images, {result.created_at}. The paper setting "
               f"trains for {classic.duration(result.paper_seconds)} on this machine, estimated from the seconds an "
               f"epoch measured in this run ({timed or 'none: every model came from the store'}).")


def page() -> None:
    st.title("Classic experiments")
    st.caption(LEAD)
    try:
        request = choose()
        found = classic.stored(request, ws.store())
    except CompressionError as exc:
        st.error(str(exc))
        return
    if found is None:
        offline_note(request)
        experiment = classic.EXPERIMENTS[request.experiment]
        if st.button("Run experiment", type="primary", key="classic_run"):
            progress.run_in_status(f"{experiment.title}, {request.setting} setting", tasks.classic,
                                   request.experiment, request.setting, request.epochs_scale, request.seed,
                                   str(ws.store().root), key=f"classic:{request.key}")
        st.info("Not run in this setting yet: **Run experiment** trains, deploys and measures its models as a "
                "background job, and stores the result, which shows here whenever this setting is chosen again.",
                icon=":material/science:")
        return
    show(found)


page()

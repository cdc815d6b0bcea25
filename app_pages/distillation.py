"""Distillation page: the teacher's softened probabilities redraw live as the temperature moves; a run trains
a narrow student on the teacher's soft targets and, beside it, the same student on labels alone, and shows
both against the teacher."""

from dataclasses import replace

import streamlit as st

from compression import distill, pipeline
from compression.data import SampleImages
from compression.recipe import DistillSpec, Recipe
from compression.result import DistillReport, Result
from ui import figures, forms, live, metrics, progress, tables, text, timing, outcomes
from ui import workspace as ws
from ui.forms import PERSIST

SAMPLES = 5  # sample images shown, one per class
ONE_A_CLASS, MISTAKES = "one a class", "the teacher's mistakes"
LEAD = ("A small student learns from the trained baseline (the teacher): α · T² · KL(teacher_T ‖ student_T) + (1 "
        "− α) · cross-entropy with the labels. A label-only control — same student, init, batches and epochs, no "
        "teacher — shows what the teacher's soft targets add.")


def measured(result: Result, base: Result | None) -> None:
    """The KD student against the label-only control and the teacher."""
    report = result.distill
    st.subheader(f"{report.student} student at {report.width:g}× width, T = {report.temperature:g}, "
                 f"α = {report.alpha:g}, {report.epochs} epochs")
    metrics.result_metrics(result, base)
    gain, noise = report.kd_gain, report.kd_noise(result.test_images)
    verdict = (noise.test if text.within_noise(noise) else
               "the teacher helped" if gain > 0 else "the teacher did not help here" if gain < 0 else "no difference")
    st.markdown(f"**Knowledge-distillation gain over the label-only control: {text.points(gain, noise)}** "
                f"({verdict}; one seed).")
    if report.teacher_accuracy < report.control_accuracy:
        st.info("The teacher is less accurate than the student trained on labels alone: its soft targets carry its "
                "mistakes too. Train the baseline longer (sidebar epochs) for a teacher worth learning from.",
                icon=":material/info:")
    accuracy, params = outcomes.distillation_figures(report)
    left, right = st.columns(2)
    figures.chart(accuracy, left, title="Test accuracy", legend=False, height=340)
    figures.chart(params, right, title="Parameters", legend=False, height=340)
    size = f"ONNX file {text.fmt_bytes(result.size_bytes)}" + (
        f" vs the teacher's {text.fmt_bytes(base.size_bytes)}" if base is not None else "")
    st.caption(f"{text.accuracy_note(result).capitalize()}: the teacher, the KD student and the control are each "
               f"exported and scored the same way. {size}. " + text.provenance_caption(result))
    curves(report)
    timing.where_the_time_goes(result)


def curves(report: DistillReport) -> None:
    """The KD student's and the control's training, epoch by epoch."""
    st.markdown("**Training curves: the KD student and the label-only control**")
    if report.student_curve is None or report.control_curve is None:
        st.caption("Training curves were not recorded for this result (computed before they were).")
        return
    loss, accuracy = outcomes.curve_figures(report)
    left, right = st.columns(2)
    figures.chart(loss, left, title="Training loss", height=300)
    figures.chart(accuracy, right, title="Train accuracy", height=300)
    st.caption("Recorded during training, each point the running mean over an epoch's batches of the train split. "
               "The losses differ in kind: the student's is the KD loss (α · T² · KL + (1 − α) · CE), the control's "
               "cross-entropy alone; compare their accuracy, and their test accuracy above.")


@st.cache_resource(max_entries=8, show_spinner=False)
def kd_student(home: str, key: str, _recipe: Recipe) -> "torch.nn.Module | None":  # noqa: F821 - no torch here
    """The stored KD student of a distillation recipe (cached per store and stage key; shared: read it only)."""
    return pipeline.stage_model(_recipe, "distill", ws.store())


@st.cache_data(max_entries=16, show_spinner=False)
def teacher_mistakes(home: str, baseline: str, _recipe: Recipe) -> SampleImages:
    """The first validation images the stored teacher classifies wrongly (cached per store and baseline)."""
    return distill.mistaken_images(ws.trained_baseline(_recipe), pipeline.splits_for(_recipe), "val", SAMPLES)


def soft_targets(recipe: Recipe, temperature: float, result: Result | None) -> None:
    """Live: the teacher's softened outputs for a few validation images at the slider's temperature, beside the
    KD student's once the chosen settings are stored; the teacher's own mistakes flagged."""
    st.subheader(f"Soft targets at T = {temperature:g}: the teacher's" + (", and the KD student's" if result else ""))
    if ws.without_torch_form(recipe, "Distillation"):
        return
    teacher = ws.trained_baseline(recipe)  # read-only: shared across sessions
    if teacher is None:
        st.info("The soft targets appear once the workspace's baseline (the teacher) is trained: the sidebar shows "
                "its progress.")
        return
    left, right = st.columns([1, 2])
    which = left.radio("Images", (ONE_A_CLASS, MISTAKES), key="distill_images", **PERSIST, horizontal=True)
    if which == ONE_A_CLASS:
        sample = right.number_input("Sample set", 0, 50, 0, key="distill_sample", **PERSIST, width=200,
                                    help="Which validation images to show: set k shows the k-th image of each class.")
        images = ws.sample_images(recipe.dataset, recipe.seed, "val", SAMPLES, sample)
    else:
        images = teacher_mistakes(str(ws.store().root), recipe.baseline().hash, recipe.baseline())
        if not images.labels:
            st.info("The teacher classifies every validation image correctly: it has no mistake to show.")
            return
    soft = distill.soft_targets(teacher, images.x, temperature)
    student = kd_student(str(ws.store().root), recipe.stage_key(0), recipe) if result is not None else None
    student_soft = distill.soft_targets(student, images.x, temperature) if student is not None else None
    st.plotly_chart(live.soft_targets_figure(images, soft, student_soft), width="stretch")
    wrong = sum(soft.wrong(images.labels))
    st.caption(f"Validation images (never the test split); softmax(logits / T), computed live. The classes other "
               f"than the top one hold {soft.dark_knowledge:.1%} of the probability the teacher gives at T = "
               f"{temperature:g} ({soft.dark_knowledge_at_one:.1%} at T = 1, the dark ticks): that spread is what the "
               "student learns from. " + (f"The teacher is wrong on {wrong} of these (red titles): its soft targets teach its "
                           "mistakes too. " if wrong else "")
               + ("Violet: the stored KD student of these settings at the same T." if student_soft is not None
                  else "The KD student's appear beside them once these settings are distilled."))


def page() -> None:
    recipe = ws.page_head("Distillation", LEAD)
    box = st.container(border=True)
    with box:
        with st.expander("Classroom preset: none on digits"):
            st.caption(distill.CLASSROOM_NOTE)
        spec = forms.distill_form("distill", DistillSpec(), recipe.model)
    run = progress.experiment(box, replace(recipe, distill=spec), "Distil and measure",
                              f"Distilling into a {spec.width:g}× student at T = {spec.temperature:g}…")
    distilled = run.result if run.result is not None and run.result.distill is not None else None
    if distilled is not None:
        measured(distilled, run.space.baseline)
    run.note_not_measured("trains the KD student and the label-only control, ")
    soft_targets(replace(recipe, distill=spec), spec.temperature, distilled)
    if not (table := tables.distillations(run.space.single_stage("distill"))).empty:
        st.subheader("Every distillation of this baseline")
        tables.show_table(table, tables.DISTILLATION_COLUMNS)


page()

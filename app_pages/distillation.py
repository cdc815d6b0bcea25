"""Distillation page: the teacher's softened probabilities redraw live as the temperature moves; a run trains
a narrow student on the teacher's soft targets and, beside it, the same student on labels alone, and shows
both against the teacher."""

from dataclasses import replace

import streamlit as st

from compression import distill
from compression.recipe import DistillSpec, Recipe
from compression.result import Result
from ui import figures, forms, live, metrics, progress, tables, text, timing, outcomes
from ui import workspace as ws
from ui.forms import PERSIST

SAMPLES = 5  # sample images shown, one per class
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
    timing.where_the_time_goes(result)


def soft_targets(recipe: Recipe, temperature: float) -> None:
    """Live: the teacher's softened outputs for a few validation images at the slider's temperature."""
    st.subheader(f"The teacher's soft targets at T = {temperature:g}")
    if ws.without_torch_form(recipe, "Distillation"):
        return
    teacher = ws.trained_baseline(recipe)  # read-only: shared across sessions
    if teacher is None:
        st.info("The soft targets appear once the workspace's baseline (the teacher) is trained: the sidebar shows "
                "its progress.")
        return
    sample = st.number_input("Sample set", 0, 50, 0, key="distill_sample", **PERSIST, width=200,
                             help="Which validation images to show: set k shows the k-th image of each class.")
    images = ws.sample_images(recipe.dataset, recipe.seed, "val", SAMPLES, sample)
    soft = distill.soft_targets(teacher, images.x, temperature)
    st.plotly_chart(live.soft_targets_figure(images, soft), width="stretch")
    st.caption(f"Validation images (never the test split); the teacher's softmax(logits / T), computed live. "
               f"The classes other than the top one hold {soft.dark_knowledge:.1%} of the probability at "
               f"T = {temperature:g} ({soft.dark_knowledge_at_one:.1%} at T = 1, the dark ticks): that spread is "
               "what the student learns from.")


def page() -> None:
    recipe = ws.page_head("Distillation", LEAD)
    box = st.container(border=True)
    with box:
        spec = forms.distill_form("distill", DistillSpec(), recipe.model)
    run = progress.experiment(box, replace(recipe, distill=spec), "Distil and measure",
                              f"Distilling into a {spec.width:g}× student at T = {spec.temperature:g}…")
    if run.result is not None and run.result.distill is not None:
        measured(run.result, run.space.baseline)
    run.note_not_measured("trains the KD student and the label-only control, ")
    soft_targets(recipe, spec.temperature)
    if not (table := tables.distillations(run.space.single_stage("distill"))).empty:
        st.subheader("Every distillation of this baseline")
        tables.show_table(table, tables.DISTILLATION_COLUMNS)


page()

"""Distillation page: the teacher's softened probabilities redraw live as the temperature moves; a run trains
a narrow student on the teacher's soft targets and, beside it, the same student on labels alone, and shows
both against the teacher."""

from dataclasses import replace

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

import ui
import views
from compression import distill, pipeline
from compression.catalog import MAX_TEMPERATURE, MIN_TEMPERATURE, MODELS
from compression.data import Splits
from compression.recipe import DistillSpec, Recipe
from compression.store import Store
from compression.train import predict

WIDTHS = (0.125, 0.25, 0.375, 0.5, 0.75, 1.0)
SAME_FAMILY = "teacher's family"
SAMPLES = 5  # sample images shown, one per class

recipe = ui.valid_recipe()
store = Store()
st.title("Distillation")
st.caption("A small student learns from the trained baseline (the teacher): α · T² · KL(teacher_T ‖ student_T) "
           "+ (1 − α) · cross-entropy with the labels. A label-only control — same student, init, batches and "
           "epochs, no teacher — shows what the teacher's soft targets add.")

with st.container(border=True):
    left, right = st.columns(2)
    temperature = left.slider("Temperature T", MIN_TEMPERATURE, MAX_TEMPERATURE, DistillSpec.temperature, 0.5,
                              key="distill_temperature", **ui.PERSIST,
                              help="Divides the teacher's logits before the softmax: higher T spreads probability "
                                   "onto the classes the teacher finds similar (the 'dark knowledge').")
    alpha = left.slider("α: weight of the teacher's soft targets", 0.0, 1.0, DistillSpec.alpha, 0.05,
                        key="distill_alpha", **ui.PERSIST, help="1 − α goes to the ordinary label loss.")
    width = right.select_slider("Student width (× the teacher's channels)", WIDTHS, DistillSpec.width,
                                key="distill_width", **ui.PERSIST)
    epochs = right.select_slider("Student epochs", views.EPOCH_CHOICES[1:], DistillSpec.epochs, key="distill_epochs",
                                 **ui.PERSIST,
                                 help=f"The KD student and the label-only control train for the same epochs. "
                                      f"{DistillSpec.epochs} by default: on digits, cross-validation put the KD "
                                      f"student ahead of the control at 40, 80 and 160 epochs, most accurate at 80.")
    student = right.selectbox("Student model", (SAME_FAMILY, *MODELS), key="distill_student", **ui.PERSIST,
                              help="The teacher's family at the chosen width, or another model (width 1 unless "
                                   "it is a cnn / resnet / mobilenet).")
    spec = DistillSpec(width, temperature, alpha, epochs, None if student == SAME_FAMILY else student)
    distilled = views.runnable(replace(recipe, distill=spec), store)
    run_clicked = st.button("Distil and measure", type="primary", disabled=distilled is None)

result = views.measured(distilled, run_clicked, store,
                        f"Distilling into a {width:g}× student at T = {temperature:g}…")
base = views.stored_baseline(recipe, store)

# ------------------------------------------------------------------ the result of the chosen settings
if result is not None and result.distill:
    report = result.distill
    st.subheader(f"{report['student']} student at {report['width']:g}× width, T = {report['temperature']:g}, "
                 f"α = {report['alpha']:g}, {report['epochs']} epochs")
    views.result_metrics(result, base)
    gain = report["kd_gain"]
    verdict = ("the teacher helped" if gain > 0 else "the teacher did not help here" if gain < 0
               else "no difference")
    st.markdown(f"**Knowledge-distillation gain over the label-only control: {100 * gain:+.2f} points** "
                f"({verdict}; one seed — small gaps are within noise).")
    if report["teacher_accuracy"] < report["control_accuracy"]:
        st.info("The teacher is less accurate than the student trained on labels alone: its soft targets carry its "
                "mistakes too. Train the baseline longer (sidebar epochs) for a teacher worth learning from.",
                icon=":material/info:")
    teacher_size = base.size_bytes if base is not None else None
    accuracy = pd.DataFrame([
        {"model": "teacher (baseline)", "test accuracy": report["teacher_accuracy"], "kind": "teacher"},
        {"model": "student with KD", "test accuracy": report["student_accuracy"], "kind": "student"},
        {"model": "student, labels only", "test accuracy": report["control_accuracy"], "kind": "control"},
    ])
    colors = {"teacher": views.COLORS["baseline"], "student": views.COLORS["measured"],
              "control": views.COLORS["control"]}
    left, right = st.columns(2)
    bars = go.Figure(go.Bar(x=accuracy["model"], y=accuracy["test accuracy"],
                            marker_color=[colors[k] for k in accuracy["kind"]],
                            text=[f"{a:.2%}" for a in accuracy["test accuracy"]], textposition="inside",
                            insidetextanchor="end"))
    low = max(0.0, float(accuracy["test accuracy"].min()) - 0.1)
    bars.update_yaxes(range=[low, 1.0], tickformat=".0%")  # no tick above 100 %
    views.chart(bars, left, title="Test accuracy", legend=False, height=340)
    sizes = go.Figure(go.Bar(x=["teacher", "student (KD and control)"],
                             y=[report["teacher_params"], report["student_params"]],
                             marker_color=[colors["teacher"], colors["student"]],
                             text=[ui.fmt_count(report["teacher_params"]), ui.fmt_count(report["student_params"])],
                             textposition="outside"))
    sizes.update_yaxes(title="parameters")
    views.chart(sizes, right, title="Parameters", legend=False, height=340)
    size_text = (f"ONNX file {ui.fmt_bytes(result.size_bytes)} vs the teacher's {ui.fmt_bytes(teacher_size)}"
                 if teacher_size else f"ONNX file {ui.fmt_bytes(result.size_bytes)}")
    st.caption(f"{views.accuracy_note(result).capitalize()}: the teacher, the KD student and the control are each "
               f"exported and scored the same way. {size_text}. " + views.provenance_caption(result))
elif distilled is not None:
    st.info("Not measured with these settings yet: **Distil and measure** trains the KD student and the "
            "label-only control, stores the result, and it shows here at once whenever these settings are chosen "
            "again.", icon=":material/science:")

# ------------------------------------------------------------------ live: the teacher's soft targets
@st.cache_data(show_spinner=False, max_entries=32)
def sample_logits(store_root: str, training_key: str, sample: int, _teacher: torch.nn.Module,
                  _splits: Splits) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample set `sample` of the validation split (its k-th image of each of the first SAMPLES classes), the
    labels and the teacher's logits: computed once a stored baseline and set, so the temperature slider only
    re-softens them."""
    val = _splits.val
    index = []
    for c in range(min(SAMPLES, _splits.num_classes)):
        found = torch.nonzero(val.y == c).flatten()
        if len(found):
            index.append(int(found[min(sample, len(found) - 1)]))
    return val.x[index], val.y[index], predict(_teacher, val.x[index])


st.subheader(f"The teacher's soft targets at T = {temperature:g}")
teacher = views.trained_baseline(recipe, store)
if teacher is None:
    st.info("The soft targets appear once the workspace's baseline (the teacher) is trained: the sidebar shows "
            "its progress.")
else:
    splits = pipeline.load_splits(recipe.dataset, recipe.seed)
    sample = st.number_input("Sample set", 0, 50, 0, key="distill_sample", **ui.PERSIST, width=200,
                             help="Which validation images to show: set k shows the k-th image of each class.")
    x, labels, logits = sample_logits(str(store.root), recipe.training_key, sample, teacher, splits)
    soft = distill.soften(logits, temperature).numpy()
    hard = distill.soften(logits, 1.0).numpy()
    names = [str(name) for name in splits.classes]
    mean, std = torch.tensor(splits.mean).view(-1, 1, 1), torch.tensor(splits.std).view(-1, 1, 1)
    fig = make_subplots(rows=2, cols=len(x), row_heights=[0.45, 0.55], vertical_spacing=0.08,
                        subplot_titles=[f"label {names[int(label)]}" for label in labels])
    for col, (image, p, p1) in enumerate(zip(x, soft, hard), 1):
        fig.add_trace(go.Image(z=ui.screen_image((image * std + mean).numpy()), hoverinfo="skip"), 1, col)
        fig.add_trace(go.Bar(x=names, y=p, marker_color=views.COLORS["measured"], name=f"T = {temperature:g}",
                             showlegend=col == 1,
                             hovertemplate="%{x}: %{y:.3f}<extra>T = " + f"{temperature:g}</extra>"),
                      2, col)
        fig.add_trace(go.Scatter(x=names, y=p1, mode="markers", marker=dict(symbol="line-ew-open", size=16,
                                 color="#0f172a", line=dict(width=2)), name="T = 1", showlegend=col == 1,
                                 hovertemplate="%{x}: %{y:.3f}<extra>T = 1</extra>"), 2, col)
        fig.update_xaxes(visible=False, row=1, col=col)
        fig.update_yaxes(visible=False, scaleanchor=f"x{col}" if col > 1 else "x", row=1, col=col)
        fig.update_yaxes(range=[0, 1], showticklabels=col == 1, title="probability" if col == 1 else None, row=2,
                         col=col)
        fig.update_xaxes(tickangle=0 if len(names) <= 10 else -60, row=2, col=col)
    views.style(fig, height=480)
    fig.update_layout(legend=dict(yanchor="top", y=-0.08), margin=dict(t=40))  # room for the subplot titles
    st.plotly_chart(fig, width="stretch")
    dark = 1 - soft.max(axis=1).mean()
    dark1 = 1 - hard.max(axis=1).mean()
    st.caption(f"Validation images (never the test split); the teacher's softmax(logits / T), computed live. "
               f"The classes other than the top one hold {dark:.1%} of the probability at T = {temperature:g} "
               f"({dark1:.1%} at T = 1, the dark ticks): that spread is what the student learns from.")

# ------------------------------------------------------------------ every distillation of this baseline
rows = []
for r in ui.workspace_results(recipe, store)[1]:
    rec = Recipe.from_dict(r.recipe)
    if rec.stages == ("distill",) and r.distill:
        d = r.distill
        rows.append({"student": d["student"], "width": d["width"], "T": d["temperature"], "α": d["alpha"],
                     "epochs": d["epochs"], "KD student": d["student_accuracy"], "labels only": d["control_accuracy"],
                     "KD gain (pts)": 100 * d["kd_gain"], "params": d["student_params"],
                     "accuracy": views.source_label(r)})
if rows:
    st.subheader("Every distillation of this baseline")
    table = pd.DataFrame(rows).sort_values(["student", "width", "T", "α", "epochs"])
    ui.show_table(table, {"KD student": ui.ACCURACY_COLUMN, "labels only": ui.ACCURACY_COLUMN,
                          "KD gain (pts)": ui.RESULT_COLUMNS["vs baseline (pts)"],
                          "params": ui.COUNT_COLUMN})

"""Trade-offs: every stored result of a workspace on one chart — accuracy against size, latency or FLOPs (log
axis), the Pareto frontier, colour by technique, the full recipe on hover, the baseline marked — with filters,
budget questions answered and ringed on the chart, a table to download, and two results side by side."""

import streamlit as st

import ui
from compression import charts, pareto
from compression.errors import CompressionError
from compression.recipe import Recipe

st.title("Trade-offs")
st.caption("Every result measured on a workspace, on one chart. Lower and to the right costs accuracy; up and to "
           "the left is better. Hover a point for its full recipe; click points (or pick below) to compare two.")

store = ui.Store()
groups = {key: results for key, results in pareto.groups(ui.stored_results(store)).items()
          if pareto.baseline_of(results) is not None}
if not groups:
    st.info("Nothing measured yet: the workspace's baseline is measured first (see the sidebar), then every "
            "result of the technique pages lands here.")
    st.stop()

current = ui.baseline_recipe().hash


def workspace(key: str) -> str:
    return ui.workspace_label(pareto.baseline_of(groups[key]).recipe)


keys = sorted(groups, key=lambda k: (k != current, workspace(k)))
key = st.selectbox("Workspace", keys,
                   format_func=lambda k: f"{workspace(k)} — {len(groups[k]) - 1} result(s) and the baseline",
                   help="Results are comparable within one workspace: same data set, model, training and timing "
                        "setup. The sidebar's workspace comes first.")
base = pareto.baseline_of(groups[key])
everything = [r for r in groups[key] if r.recipe_hash != base.recipe_hash]

left, middle, right = st.columns([1.2, 2, 1.2])
metric = left.segmented_control("Cost axis", pareto.METRICS, default="size", required=True, key="tradeoffs_metric",
                                format_func=ui.METRIC_NAMES.get, **ui.PERSIST)
techniques = sorted({r.technique for r in everything})
chosen = middle.multiselect("Techniques", techniques, default=techniques, key="tradeoffs_techniques", **ui.PERSIST,
                            placeholder="every technique")
kinds = right.pills("Accuracy", ("measured", "simulated"), selection_mode="multi", default=("measured", "simulated"),
                    key="tradeoffs_kinds", **ui.PERSIST,
                    help="measured: the ONNX file run in onnxruntime; simulated: torch with fake quantization, for "
                         "formats no CPU runtime executes")
floor = st.slider("Hide results below this test accuracy", 0.0, 100.0, 0.0, 1.0, format="%.0f%%",
                  key="tradeoffs_floor", **ui.PERSIST)
shown = [r for r in everything if r.technique in (chosen or techniques)
         and ("measured" if charts.is_measured(r) else "simulated") in kinds and 100 * r.accuracy >= floor]

# ----------------------------------------------------------------------------------------- budget questions
st.subheader("Budget questions", anchor=False)
st.caption("Answered among the results shown (the baseline included) and ringed on the chart with their number.")
size_kb = base.size_bytes / 1024
latency = base.latency_ms.p50 if base.latency_ms else 1.0
q1, q2, q3 = st.columns(3)
budgets = [
    (q1, pareto.Budget("under", "size", 1024 * q1.number_input(
        "1 · Most accurate under … KB", min_value=0.0, value=round(size_kb / 2, 1),
        step=max(0.1, round(size_kb / 20, 1)), key="budget_kb", **ui.PERSIST))),
    (q2, pareto.Budget("under", "latency", q2.number_input(
        "2 · Most accurate under … ms (batch p50)", min_value=0.0, value=round(latency / 2, 4), step=0.01,
        format="%.4f", key="budget_ms", **ui.PERSIST))),
    (q3, pareto.Budget("within", "size", q3.number_input(
        "3 · Smallest within … points of the baseline", min_value=0.0, value=1.0, step=0.25,
        key="budget_points", **ui.PERSIST))),
]
highlights = []
for number, (column, budget) in enumerate(budgets, 1):
    try:
        answer = budget.answer(shown, base)
    except CompressionError as exc:
        column.error(str(exc))
        continue
    if answer is None:
        column.warning(f"Nothing shown is {budget.question}.", icon=":material/block:")
        continue
    scale, _ = charts.axis_scale(budget.metric)
    cost = pareto.metric_value(answer, budget.metric, base) / scale
    unit = pareto.UNITS[budget.metric][0]
    highlights.append(charts.Highlight(answer, str(number)))
    with column.container(border=True):
        st.markdown(f":red[**{number}**] · **{answer.technique}** · {ui.describe(answer.recipe)}")
        st.markdown(f"{answer.accuracy:.2%} ({ui.points(answer.accuracy - base.accuracy)}) at "
                    f"**{cost:,.4g} {unit}** · {ui.accuracy_mark(answer)}")
        st.caption(f"`{answer.recipe_hash}`")

# --------------------------------------------------------------------------------------------- the chart
figure = ui.tradeoff_figure(shown, metric, base, highlights=highlights)
event = st.plotly_chart(figure, width="stretch", key="tradeoffs_chart", on_select="rerun",
                        selection_mode=("points",))
notes = [ui.CHART_NOTE]
if (missing := ui.unplotted_note(shown, metric, base)) is not None:
    notes.append(missing)
if len(shown) < len(everything):
    notes.append(f"Filters hide {len(everything) - len(shown)} of {len(everything)} result(s).")
st.caption(" ".join(notes))

# --------------------------------------------------------------------------------------------- the table
table = ui.results_table([base, *shown], base)
st.subheader(f"{len(shown)} result(s) and the baseline", anchor=False)
ui.show_table(table, ui.RESULT_COLUMNS)
downloads = st.container(horizontal=True)
downloads.download_button("Download table (CSV)", table.to_csv(index=False).encode(), file_name="tradeoffs.csv",
                             mime="text/csv", icon=":material/download:", on_click="ignore")
try:
    from compression import report
except ImportError:  # the report module is optional in a checkout without it
    report = None
if report is not None:
    asked = [budget for _, budget in budgets]
    downloads.download_button("Download HTML report", ui.html_report(report, [base, *shown], asked),
                                 file_name="compression-report.html", mime="text/html",
                                 icon=":material/description:", on_click="ignore")

# ------------------------------------------------------------------------------------------- side by side
st.subheader("Compare two results", anchor=False)
options = [base.recipe_hash, *(r.recipe_hash for r in shown)]
by_hash = {r.recipe_hash: r for r in [base, *shown]}
clicked = [p["customdata"][0] for p in (event.selection.points if event else []) if p.get("customdata")]
clicked = [h for h in dict.fromkeys(clicked) if h in by_hash][-2:]
if clicked and clicked != st.session_state.get("_tradeoffs_clicked"):  # a click adds to the pair, oldest goes
    st.session_state["_tradeoffs_clicked"] = clicked
    kept = [h for h in st.session_state.get("tradeoffs_compare", []) if h not in clicked]
    st.session_state["tradeoffs_compare"] = (kept + clicked)[-2:]
st.session_state["tradeoffs_compare"] = [h for h in st.session_state.get("tradeoffs_compare", []) if h in by_hash]
pair = st.multiselect("Pick two (or click two points on the chart)", options, max_selections=2,
                      key="tradeoffs_compare", **ui.PERSIST,
                      format_func=lambda h: f"{by_hash[h].technique} · {ui.describe(by_hash[h].recipe)} · "
                                            f"{by_hash[h].accuracy:.2%}")
if len(pair) == 2:
    a, b = (by_hash[h] for h in pair)
    for column, r in zip(st.columns(2), (a, b)):
        with column.container(border=True):
            st.markdown(f"**{r.technique}** · `{r.recipe_hash}`")
            st.markdown(ui.describe(r.recipe))
            recipe = Recipe.from_dict(r.recipe)
            st.caption(f"{ui.workspace_label(recipe)} · order "
                       f"{' → '.join(ui.STAGE_NAMES[s] for s in recipe.stages) or '—'}")
    rows = ui.compare_rows(a, b, base)
    st.dataframe(rows, hide_index=True, width="stretch", height="content")
elif len(pair) == 1:
    st.caption("Pick one more.")

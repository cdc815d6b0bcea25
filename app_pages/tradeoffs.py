"""Trade-offs: every stored result of a workspace on one chart — accuracy against size, latency or FLOPs (log
axis), the Pareto frontier, colour by technique, the full recipe on hover, the baseline marked — with filters,
budget questions answered and ringed on the chart, a table to download, two results side by side, and why a timed
result is not as fast as its FLOPs predict, with where its time goes."""

import streamlit as st

from compression import charts, classes, data, describe, pareto, pipeline, profile, workspace
from compression.errors import CompressionError
from compression.recipe import Recipe
from compression.result import Result, is_measured
from ui import figures, metrics, tables, text, timing
from ui import workspace as ws
from ui.forms import PERSIST


def filtered(results: list[Result], metric_column) -> list[Result]:
    """The results the filters keep: techniques, measured / simulated, an accuracy floor."""
    middle, right = metric_column
    techniques = sorted({r.technique for r in results})
    chosen = middle.multiselect("Techniques", techniques, default=techniques, key="tradeoffs_techniques", **PERSIST,
                                placeholder="every technique")
    kinds = right.pills("Accuracy", ("measured", "simulated"), selection_mode="multi", default=("measured", "simulated"),
                        key="tradeoffs_kinds", **PERSIST,
                        help="measured: the ONNX file run in onnxruntime; simulated: torch with fake quantization, "
                             "for formats no CPU runtime executes")
    floor = st.slider("Hide results below this test accuracy", 0.0, 100.0, 0.0, 1.0, format="%.0f%%",
                      key="tradeoffs_floor", **PERSIST)
    return [r for r in results if r.technique in (chosen or techniques) and text.accuracy_kind(r) in kinds
            and 100 * r.accuracy >= floor]


def budget_questions(shown: list[Result], base: Result, simulated: bool
                     ) -> tuple[list[pareto.Budget], list[charts.Highlight]]:
    """Three budget questions asked of the results shown (the baseline included; simulated ones only with
    `simulated`), each answer in a card under its question; the questions, and their answers to ring on the
    chart with the question's number."""
    st.subheader("Budget questions", anchor=False)
    st.caption("Answered among the results shown (the baseline included) that a user can ship"
               f"{' and, flagged, the simulated ones' if simulated else ''}, and ringed on the chart with their number.")
    size_kb, latency = base.size_bytes / 1024, base.latency_ms.p50 if base.latency_ms else 1.0
    q1, q2, q3 = st.columns(3)
    asked = [
        (q1, pareto.Budget("under", "size", 1024 * q1.number_input(
            "1 · Most accurate under … KB", min_value=0.0, value=round(size_kb / 2, 1),
            step=max(0.1, round(size_kb / 20, 1)), key="budget_kb", **PERSIST))),
        (q2, pareto.Budget("under", "latency", q2.number_input(
            "2 · Most accurate under … ms (batch p50)", min_value=0.0, value=round(latency / 2, 4), step=0.01,
            format="%.4f", key="budget_ms", **PERSIST))),
        (q3, pareto.Budget("within", "size", q3.number_input(
            "3 · Smallest within … points of the baseline", min_value=0.0, value=1.0, step=0.25,
            key="budget_points", **PERSIST))),
    ]
    rings = []
    for number, (column, budget) in enumerate(asked, 1):
        try:
            answer = budget.answer(shown, base, simulated)
        except CompressionError as exc:
            column.error(str(exc))
            continue
        if answer is None:
            column.warning(f"Nothing shown is {budget.question}.", icon=":material/block:")
            continue
        rings.append(charts.Highlight(answer, str(number)))
        scale, _ = charts.axis_scale(budget.metric)
        cost = pareto.metric_value(answer, budget.metric, base) / scale
        with column.container(border=True):
            flag = "" if is_measured(answer) else " · :orange[**simulated: not deployable**]"
            st.markdown(f":red[**{number}**] · **{answer.technique}** · {describe.recipe(answer.recipe)}{flag}")
            delta = text.points(answer.accuracy - base.accuracy, answer.accuracy_noise(base))
            st.markdown(f"{answer.accuracy:.2%} ({delta}) at "
                        f"**{cost:,.4g} {pareto.UNITS[budget.metric][0]}** · {text.accuracy_mark(answer)}")
    return [budget for _, budget in asked], rings


def compare(shown: list[Result], base: Result, event) -> None:
    """Two results side by side, picked from a list or by clicking two points on the chart."""
    st.subheader("Compare two results", anchor=False)
    by_hash = {r.recipe_hash: r for r in [base, *shown]}
    clicked = [p["customdata"][0] for p in (event.selection.points if event else []) if p.get("customdata")]
    clicked = [h for h in dict.fromkeys(clicked) if h in by_hash][-2:]
    if clicked and clicked != st.session_state.get("_tradeoffs_clicked"):  # a click adds to the pair, oldest goes
        st.session_state["_tradeoffs_clicked"] = clicked
        kept = [h for h in st.session_state.get("tradeoffs_compare", []) if h not in clicked]
        st.session_state["tradeoffs_compare"] = (kept + clicked)[-2:]
    st.session_state["tradeoffs_compare"] = [h for h in st.session_state.get("tradeoffs_compare", []) if h in by_hash]
    pair = st.multiselect("Pick two (or click two points on the chart)", list(by_hash), max_selections=2,
                          key="tradeoffs_compare", **PERSIST,
                          format_func=lambda h: f"{by_hash[h].technique} · {describe.recipe(by_hash[h].recipe)} · "
                                                f"{by_hash[h].accuracy:.2%}")
    if len(pair) == 1:
        st.caption("Pick one more.")
    if len(pair) != 2:
        return
    a, b = (by_hash[h] for h in pair)
    for column, r in zip(st.columns(2), (a, b)):
        with column.container(border=True):
            st.markdown(f"**{r.technique}** · {describe.recipe(r.recipe)}")
            st.caption(f"{describe.workspace(r.recipe)} · order {describe.order(r.recipe)}")
            metrics.download_onnx(r)
    try:
        comparison = pipeline.compare_results(ws.store(), a, b)
    except CompressionError as exc:
        comparison, why_not = None, exc
    st.dataframe(tables.compare_rows(a, b, base, comparison.paired if comparison else None), hide_index=True,
                 width="stretch", height="content")
    if comparison is None:
        st.caption(f"Class by class: {why_not}.")
    else:
        class_by_class(a, b, comparison)


def class_by_class(a: Result, b: Result, comparison: classes.Comparison, shown_images: int = 12) -> None:
    """A and B on the same test images: McNemar's verdict, each class's change (neutral where within noise),
    and the images A got right that B gets wrong."""
    paired = comparison.paired
    verdict = "within noise" if paired.within_noise else "a real difference"
    st.markdown(f"**Class by class** (measured on the same {sum(c.before.total for c in comparison.classes)} test "
                f"images): {paired.only_first} right only in A, {paired.only_second} right only in B — McNemar's "
                f"exact test p = {paired.p_value:.3g}: **{verdict}**.")
    figures.chart(figures.class_change_figure(comparison.classes), title="Accuracy change by class, B − A (grey: "
                  "within noise for that class)", height=300)
    if comparison.flipped:
        images = data.images_at(pipeline.splits_for(Recipe.from_dict(a.recipe)), "test",
                                comparison.flipped[:shown_images])
        said = [images.classes[c] for c in comparison.flipped_to[:shown_images]]
        st.caption(f"{len(comparison.flipped)} test image(s) A gets right and B gets wrong"
                   f"{f' (the first {shown_images})' if len(comparison.flipped) > shown_images else ''}:")
        st.image([data.screen_image(p, 64) for p in images.pixels], width=64,
                 caption=[f"{name} → {b_said}" for name, b_said in zip(images.names, said)])


def why_not_faster(shown: list[Result], why: dict[str, profile.Diagnosis]) -> None:
    """A timed result picked by its recipe: its speed-up beside the one its work predicts, the likely causes
    where it falls short, and where its time goes beside its baseline (ui/timing: its profile, or the button
    that profiles it)."""
    st.subheader("Why not faster", anchor=False)
    timed = {r.recipe_hash: r for r in sorted(shown, key=lambda r: r.recipe_hash not in why)  # short ones first
             if r.latency_measured and r.speedup_vs_baseline}
    if not timed:
        st.caption("No timed result is shown (a simulated format is not timed).")
        return
    if st.session_state.get("tradeoffs_why") not in timed:  # hidden by a filter, or of another workspace
        st.session_state.pop("tradeoffs_why", None)
    result = timed[st.selectbox("A timed result", list(timed), key="tradeoffs_why", **PERSIST,
                                format_func=lambda h: f"{timed[h].technique} · {describe.recipe(timed[h].recipe)}")]
    expected, diagnosis = profile.expected_speedup(result), why.get(result.recipe_hash)
    zeros = " (its zero weights counted as skipped)" if result.sparsity > profile.SPARSE else ""
    predicted = f"its FLOPs{zeros} predict {expected:.2f}×" if expected else "nothing predicts its speed"
    speed = text.noted(f"**{result.speedup_vs_baseline:.2f}×** the baseline's speed", result.speedup_noise)
    if diagnosis is None:
        st.markdown(f"Timed {speed}; {predicted}: as fast as its work predicts, nothing to explain.")
    else:
        st.markdown(f"Timed {speed} where {predicted}.")
        if diagnosis.source == "structure":  # a profile's measured causes are listed under its charts below
            st.caption(f"Likely causes, {diagnosis.label} (not profiled yet: the profile below measures them).")
            for finding in diagnosis.findings:
                st.markdown(f"- {finding.text}")
            if not diagnosis.findings:
                st.markdown("- None of the known causes shows in its structure: its profile may tell.")
    timing.where_the_time_goes(result)


def page() -> None:
    st.title("Trade-offs")
    st.caption("Every result measured on a workspace, on one chart. Lower and to the right costs accuracy; up and to "
               "the left is better. Hover a point for its full recipe; click points (or pick below) to compare two.")
    spaces = workspace.measured(ws.store())
    if not spaces:
        st.info("Nothing measured yet: the workspace's baseline is measured first (see the sidebar), then every "
                "result of the technique pages lands here.")
        st.stop()
    current = ws.baseline_recipe().hash
    keys = sorted(spaces, key=lambda k: (k != current, describe.workspace(spaces[k].baseline.recipe)))
    key = st.selectbox("Workspace", keys, format_func=lambda k: f"{describe.workspace(spaces[k].baseline.recipe)} — "
                                                                 f"{len(spaces[k].results)} result(s) and the baseline",
                       help="Results are comparable within one workspace: same data set, model, training and timing "
                            "setup. The sidebar's workspace comes first.")
    base, everything = spaces[key].baseline, spaces[key].results
    left, middle, right = st.columns([1.2, 2, 1.2])
    metric = left.segmented_control("Cost axis", pareto.METRICS, default="size", required=True, key="tradeoffs_metric",
                                    format_func=figures.METRIC_NAMES.get, **PERSIST)
    shown = filtered(everything, (middle, right))
    simulated = st.toggle("Let simulated results answer and join the frontier", False, key="tradeoffs_simulated",
                          **PERSIST, help="Off: budget answers and the frontier consider only results measured in a "
                                          "runtime, which a user can ship. Simulated formats (k-bit weights in torch) "
                                          "have no deployable file.")
    asked, rings = budget_questions(shown, base, simulated)
    why = figures.explanations(shown)
    figure = figures.tradeoff_figure(shown, metric, base, why, highlights=rings, simulated=simulated)
    event = st.plotly_chart(figure, width="stretch", key="tradeoffs_chart", on_select="rerun",
                            selection_mode=("points",))
    hidden = f"Filters hide {len(everything) - len(shown)} of {len(everything)} result(s)." \
        if len(shown) < len(everything) else ""
    st.caption(figures.chart_notes(shown, metric, base, hidden))

    table = tables.results_table([base, *shown], base, why)
    st.subheader(f"{len(shown)} result(s) and the baseline", anchor=False)
    tables.show_table(table, tables.RESULT_COLUMNS)
    tables.downloads(table, [base, *shown], "tradeoffs", "Compression Explorer — trade-offs", asked)
    compare(shown, base, event)
    why_not_faster(shown, why)


page()

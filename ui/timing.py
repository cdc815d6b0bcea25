"""Where the time goes, on a technique page: a measured result's onnxruntime per-node profile beside its
baseline's (compression/profile.py), its compute layers and its op types as bars, and the causes that apply in
words; or the button that profiles it as a background job."""

import plotly.graph_objects as go
import streamlit as st

from compression import profile, tasks
from compression.charts import PALETTE
from compression.recipe import Recipe
from compression.result import Result
from ui import figures, progress, text
from ui import workspace as ws


def layers_figure(report: dict) -> go.Figure:
    """Per compute layer, microseconds a run: the result beside the baseline, each bar's op and kernel on
    hover, the layers slower than in the baseline marked."""
    layers = report["layers"]
    labels = [f"{layer['label']} ▲" if layer["slower"] else layer["label"] for layer in layers]
    fig = go.Figure()
    fig.add_bar(name="this model", x=labels, y=[layer["us"] for layer in layers], marker_color=PALETTE["measured"],
                customdata=[f"{layer['op']} ({layer['kernel']})" for layer in layers],
                hovertemplate="%{x}: %{y:.1f} µs · %{customdata}<extra>this model</extra>")
    fig.add_bar(name="baseline", x=labels, y=[layer["baseline_us"] or 0 for layer in layers],
                marker_color=PALETTE["baseline"],
                customdata=[f"{layer['baseline_op']} ({layer['baseline_kernel']})" for layer in layers],
                hovertemplate="%{x}: %{y:.1f} µs · %{customdata}<extra>baseline</extra>")
    fig.update_layout(barmode="group")
    fig.update_yaxes(title="µs a run (median)", rangemode="tozero")
    return fig


def ops_figure(report: dict) -> go.Figure:
    """Per op type (every op of either graph, the model's largest first), microseconds a run: the result beside
    the baseline."""
    mine, base = report["result"]["by_op"], report["baseline"]["by_op"]
    ops = list(dict.fromkeys([*mine, *base]))
    fig = go.Figure()
    for name, times, color in (("this model", mine, PALETTE["measured"]), ("baseline", base, PALETTE["baseline"])):
        fig.add_bar(name=name, x=ops, y=[times.get(op, 0.0) for op in ops], marker_color=color,
                    hovertemplate=f"%{{x}}: %{{y:.1f}} µs<extra>{name}</extra>")
    fig.update_layout(barmode="group")
    fig.update_yaxes(title="µs a run (median)", rangemode="tozero")
    return fig


def where_the_time_goes(result: Result) -> None:
    """The stored profile of `result` against its baseline, or a button that measures it."""
    if not result.latency_measured or Recipe.from_dict(result.recipe).is_baseline:
        return
    st.subheader("Where the time goes")
    report = profile.stored(ws.store(), result.recipe_hash)
    if report is None:
        st.caption("onnxruntime's own timing of each node of this model and of its baseline, run interleaved on "
                   "this machine: which layers got faster, which slower, in which kernel, and why.")
        if st.button("Profile in onnxruntime", key=f"profile_{result.recipe_hash}"):
            progress.run_in_status("Profiling this model and its baseline…", tasks.profile, result.recipe_hash,
                                   str(ws.store().root), key=f"profile:{result.recipe_hash}")
        return
    mine, base = report["result"], report["baseline"]
    by_layer, by_op = st.columns(2)
    figures.chart(layers_figure(report), by_layer, height=320,
                  title=f"Compute layers: {mine['run_us']:.0f} µs a run against the baseline's {base['run_us']:.0f} µs")
    figures.chart(ops_figure(report), by_op, height=320, title="Time per op type")
    predicted, measured = report["predicted_speedup"], report["measured_speedup"]
    expected = (f" FLOPs predict {predicted:.2f}× the baseline's speed; timed "
                f"{text.noted(f'{measured:.2f}×', result.speedup_noise)}."
                if predicted is not None and measured is not None else "")
    st.caption(f"Measured · onnxruntime's profiler on {report['measured_on']}, median of {mine['runs']} runs each, "
               f"batch {mine['batch']}, {mine['threads']} thread(s); ▲ slower than in the baseline. Outside the "
               f"nodes (copies, the executor): {mine['overhead_us']:.0f} µs against {base['overhead_us']:.0f} µs."
               f"{expected}")
    for finding in report["findings"]:
        st.markdown(f"- {finding['text']}")
    if not report["findings"]:
        st.markdown("- None of the known causes of a model smaller but not faster applies to this one.")

"""Compression Explorer: the entry page. Navigation over pages/, the shared Workspace sidebar (data set, model,
seed, epochs, the baseline's card), work left running by a rerun, then the page."""

import streamlit as st

import ui

PAGES = (  # file, title, icon
    ("pages/overview.py", "Overview", ":material/dashboard:"),
    ("pages/pruning.py", "Pruning", ":material/content_cut:"),
    ("pages/quantization.py", "Quantization", ":material/grain:"),
    ("pages/distillation.py", "Distillation", ":material/school:"),
    ("pages/pipeline.py", "Pipeline", ":material/linear_scale:"),
    ("pages/tradeoffs.py", "Trade-offs", ":material/scatter_plot:"),
    ("pages/sweep.py", "Sweep", ":material/grid_on:"),
)

st.set_page_config(page_title="Compression Explorer", page_icon=":material/compress:", layout="wide")
page = st.navigation([st.Page(file, title=title, icon=icon, default=file == PAGES[0][0])
                      for file, title, icon in PAGES])
ui.sidebar()  # after st.navigation: before it, the first sidebar change of a new server is dropped
ui.pending_jobs()
try:
    page.run()
finally:
    ui.warm_up()  # once per server process, after the first page is drawn: torch loads in the background

"""Compression Explorer: the entry page. Shared sidebar (data set, model, seed, epochs), then the page."""

import streamlit as st

import ui

st.set_page_config(page_title="Compression Explorer", page_icon=":material/compress:", layout="wide")
page = st.navigation([
    st.Page("pages/baseline.py", title="Baseline", icon=":material/straighten:", default=True),
    st.Page("pages/pruning.py", title="Pruning", icon=":material/content_cut:"),
])
ui.sidebar()  # after st.navigation: before it, the first sidebar change of a new server is dropped
page.run()

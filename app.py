"""Compression Explorer: the entry page. Shared sidebar (data set, model, seed, epochs), then the page."""

import streamlit as st

import ui

st.set_page_config(page_title="Compression Explorer", page_icon="🗜️", layout="wide")
ui.sidebar()
page = st.navigation([st.Page("pages/baseline.py", title="Baseline", icon="📏", default=True)])
page.run()

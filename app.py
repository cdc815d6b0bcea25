"""Compression Explorer: the entry page. Navigation over app_pages/, the shared Workspace sidebar (data set,
model, seed, epochs, the baseline's card), work left running by a rerun, then the page.

The folder is not called `pages/`: Streamlit serves a page of a folder by that name, opened by its URL, as a
script of its own, without this entry page (no sidebar, no navigation). See docs/ARCHITECTURE.md."""

from pathlib import Path

FAVICON = Path(__file__).resolve().parent / "assets" / "favicon.png"
PAGES = (  # file, title, icon
    ("app_pages/overview.py", "Overview", ":material/dashboard:"),
    ("app_pages/pruning.py", "Pruning", ":material/content_cut:"),
    ("app_pages/quantization.py", "Quantization", ":material/grain:"),
    ("app_pages/distillation.py", "Distillation", ":material/school:"),
    ("app_pages/pipeline.py", "Pipeline", ":material/linear_scale:"),
    ("app_pages/tradeoffs.py", "Trade-offs", ":material/scatter_plot:"),
    ("app_pages/sweep.py", "Sweep", ":material/grid_on:"),
    ("app_pages/search.py", "Search", ":material/travel_explore:"),
    ("app_pages/classic.py", "Classic experiments", ":material/history_edu:"),
)


def main() -> None:
    """The app: page config, navigation, the Workspace sidebar, pending work, then the chosen page."""
    import streamlit as st  # here, not at the top: a sweep worker re-running this script needs neither

    from compression.errors import CompressionError
    from ui import progress, workspace
    st.set_page_config(page_title="Compression Explorer", page_icon=str(FAVICON), layout="wide")  # a file: no outside host
    page = st.navigation([st.Page(file, title=title, icon=icon, default=file == PAGES[0][0])
                          for file, title, icon in PAGES])
    try:
        workspace.sidebar()  # after st.navigation: before it, the first sidebar change of a new server is dropped
        progress.pending_jobs(page.url_path)
        page.run()
    except CompressionError as exc:  # e.g. a store that cannot be opened: one line, as everywhere
        st.error(str(exc))


# Streamlit runs this script as __main__. A sweep's spawned worker processes re-run __main__ as __mp_main__:
# there the app must not run (it would train the default workspace's baseline beside the worker's own export,
# whose tracing state in torch is global); nor when the module is imported (its PAGES read).
if __name__ == "__main__":
    main()

"""The Streamlit app's shared pieces, one concern a module (docs/ARCHITECTURE.md):

    workspace  the sidebar's Workspace, its baseline card, the stored baseline network and images
    forms      one form per compression stage, returning its Spec; the Sweep grid
    jobs       background work in threads of the server process
    progress   long work as a page shows it: checks, Run, status boxes, work left running
    metrics    a Result's figures as rows of st.metric
    tables     stored results as tables
    figures    the one chart look, generic builders, the trade-off chart
    live       teaching views that redraw as a slider moves
    outcomes   charts of what the technique pages measured
    text       numbers and provenance in words

Pages (app_pages/) read widgets through these, call compression/, draw; nothing here computes a measurement.
"""

"""`make run`: the app's Streamlit server, with the deep-learning stack (torch, onnxruntime, the compression
pipeline) and the charting libraries imported, and plotly's once-per-process work done, before it listens, so
that no page of a new server process waits for them. Arguments go to `streamlit run app.py`, e.g.
`python serve.py --server.port 8502`."""

import sys
from pathlib import Path

import plotly.graph_objects  # noqa: F401
from streamlit.web import cli

import compression.pipeline  # noqa: F401
import ui

if __name__ == "__main__":
    ui.warm_plotly()
    sys.argv = ["streamlit", "run", str(Path(__file__).with_name("app.py")), *sys.argv[1:]]
    sys.exit(cli.main())

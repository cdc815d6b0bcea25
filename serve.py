"""`make run`: the app's Streamlit server, with the deep-learning stack (torch, onnxruntime, the compression
pipeline) and the charting libraries imported before it listens, so that no page of a new server process
waits for those imports. Arguments go to `streamlit run app.py`, e.g. `python serve.py --server.port 8502`."""

import sys
from pathlib import Path

import plotly.graph_objects  # noqa: F401
from streamlit.web import cli

import compression.pipeline  # noqa: F401

if __name__ == "__main__":
    sys.argv = ["streamlit", "run", str(Path(__file__).with_name("app.py")), *sys.argv[1:]]
    sys.exit(cli.main())

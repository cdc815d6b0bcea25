"""`make run`: the app's Streamlit server, with the deep-learning stack (torch, onnxruntime, the compression
pipeline) and the charting libraries imported, plotly's once-per-process work done, the jobs' fork server
started and the default workspace's data set loaded before it listens, so that no page of a new server process
waits for them.
Arguments go to `streamlit run app.py`, e.g. `python serve.py --server.port 8502`."""

import sys
from pathlib import Path

from streamlit.web import cli

from compression import pipeline
from compression.recipe import Recipe
from ui import figures, jobs

if __name__ == "__main__":
    figures.warm_plotly()
    jobs.warm()  # the fork server every job's process starts from: it imports torch once, now
    pipeline.load_splits(Recipe.dataset, Recipe.seed)  # the default workspace's data (digits: offline, 0.2 s)
    sys.argv = ["streamlit", "run", str(Path(__file__).with_name("app.py")), *sys.argv[1:]]
    sys.exit(cli.main())

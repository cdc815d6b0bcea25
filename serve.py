"""`make run`: the app's Streamlit server and the local worker that runs its jobs (`python -m compression worker`,
one slot a core, or $COMPRESSION_WORKERS), stopped with the server: by the server at its exit, or by itself once
the server is gone (killed). The server starts with the deep-learning stack (torch, onnxruntime, the compression
pipeline) and the charting libraries imported, plotly's once-per-process work done and the default workspace's
data set loaded before it listens, so that no page of a new server process waits for them.
Arguments go to `streamlit run app.py`, e.g. `python serve.py --server.port 8502`."""

import atexit
import os
import subprocess
import sys
import time
from pathlib import Path

from streamlit.web import cli

from compression import pipeline
from compression.recipe import Recipe
from ui import figures, jobs

_READY = 30.0  # seconds the worker has to say it serves the store before the server starts without it


def start_worker() -> subprocess.Popen:
    """The local worker on this server's store, stopped at the server's exit (`wait_for_worker` before the
    server listens)."""
    worker = subprocess.Popen([sys.executable, "-m", "compression", "worker", "--slots", str(jobs.slots()),
                               "--parent", str(os.getpid())])
    atexit.register(stop_worker, worker)
    return worker


def wait_for_worker(worker: subprocess.Popen) -> None:
    """Until the worker serves the store (its fork server has imported torch), or for _READY s at most: the
    server then embeds worker slots of its own at the first job."""
    deadline = time.monotonic() + _READY
    while jobs.queue().workers() == 0 and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)


def stop_worker(worker: subprocess.Popen) -> None:
    """Stop the worker (SIGTERM: its running jobs go back to the queue), killed if it has not within 20 s."""
    worker.terminate()
    try:
        worker.wait(20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


if __name__ == "__main__":
    worker = start_worker()
    figures.warm_plotly()
    pipeline.load_splits(Recipe.dataset, Recipe.seed)  # the default workspace's data (digits: offline, 0.2 s)
    wait_for_worker(worker)
    sys.argv = ["streamlit", "run", str(Path(__file__).with_name("app.py")), *sys.argv[1:]]
    sys.exit(cli.main())

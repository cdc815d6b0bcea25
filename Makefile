# Two commands: `make run` starts the app, `make test` runs every test. Both create .venv if needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
# The interface the app listens on: this machine only; `make run ADDRESS=0.0.0.0` lets other machines reach it.
ADDRESS ?= 127.0.0.1

.PHONY: run test bench clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	$(PY) serve.py --server.port $(PORT) --server.address $(ADDRESS)

test: $(VENV)/.dev
	$(PY) -m pytest

bench: $(VENV)/.dev
	for b in baseline pruning round_to quantization mixed hardware distillation_epochs chain_finetune distillation distillation_selection sweep search executor clock runtimes byom streaming app; do $(PY) bench/$$b.py || exit 1; done

clean-venv:
	rm -rf $(VENV)

# One command each: `make demo` sets up and diagnoses the shipped default model; `make test` sets up
# and runs the test suite. Both need only Python 3.11 and pip (plus Debian's chromium, which
# `make browser-deps` installs, for the browser test).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_MODEL ?= models/artifacts/cnn.h5
PYTEST_ARGS ?=

.PHONY: venv demo demo-sweep test test-slow test-all zoo zoo-checkpoints bench clean browser-deps

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -c constraints.txt -e ".[all,test,ray]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/diagnose $(DEMO_MODEL) --out reports/demo; code=$$?; \
	echo "exit code $$code; open reports/demo/report.html"; test $$code -le 1

# The health of a training run over its checkpoints (the zoo's small overfitting convnet), then open
# the dashboard's Sweep page on it with `diagnose dashboard reports/sweep-cnn_overfit`.
demo-sweep: $(STAMP)
	$(VENV)/bin/diagnose sweep models/artifacts/checkpoints/cnn_overfit --out reports/sweep-cnn_overfit; code=$$?; \
	echo "exit code $$code; see reports/sweep-cnn_overfit/sweep.json"; test $$code -le 1

test: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -m "slow" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

zoo: $(STAMP)
	$(PY) -m diagnostics_zoo.train

zoo-checkpoints: $(STAMP)
	$(PY) -m diagnostics_zoo.checkpoints

browser-deps:
	.ci/browser-deps

clean:
	rm -rf $(VENV) reports .pytest_cache

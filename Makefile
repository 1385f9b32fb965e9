# The two commands a new user needs (see README):
#   make app    set everything up, start the app on the shipped weights
#   make test   set everything up, run the whole test suite
# Setup is idempotent: the venv is rebuilt only when a requirements file changes.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501

.PHONY: app test setup browser clean

app: $(VENV)/.ready
	$(PY) -m streamlit run app.py --server.port $(PORT)

test: $(VENV)/.ready-dev browser
	$(PY) -m pytest

setup: $(VENV)/.ready-dev browser

$(VENV)/.ready: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(PY) -m aecore prepare-data
	touch $@

$(VENV)/.ready-dev: $(VENV)/.ready requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

browser:
	bash scripts/install-browser.sh

clean:
	rm -rf $(VENV) .pytest_cache

# make run: start the app. make test: ruff and the whole test suite. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
APP_STAMP := $(VENV)/.installed-app
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test bench bench-page lint

run: $(APP_STAMP)
	$(PY) -m streamlit run app.py

test: $(DEV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest

bench: $(APP_STAMP)
	$(PY) -m playground bench

bench-page: $(DEV_STAMP)
	$(PY) -m bench.page_cost

lint: $(DEV_STAMP)
	$(PY) -m ruff check .

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(APP_STAMP): requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(APP_STAMP) $@

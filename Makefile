# make run: start the app. make test: ruff and the whole test suite. make check: ruff and the fast tests (not
# marked browser, ray or slow) on every core. Each creates .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
APP_STAMP := $(VENV)/.installed-app
DEV_STAMP := $(VENV)/.installed-dev

FAST := not browser and not ray and not slow
APART := browser or ray
PARALLEL := -n auto --dist loadgroup

.PHONY: run test check bench bench-page lint

run: $(APP_STAMP)
	$(PY) -m streamlit run app.py

# the whole suite: what can share the machine on every core, then the browser and Ray tests one at a time in a
# process of their own (one Streamlit server, one Ray cluster); both always run, and either failing fails
test: $(DEV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -m "not ($(APART))" $(PARALLEL); parallel=$$?; \
	$(PY) -m pytest -m "$(APART)" -p no:xdist; apart=$$?; \
	[ $$parallel -eq 0 ] && [ $$apart -eq 0 ]

check: $(DEV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -m "$(FAST)" $(PARALLEL)

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

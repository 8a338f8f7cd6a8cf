# auto-mastering: the two commands are `make reproduce` and `make test` (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
PROFILE ?= smoke
ONLY    ?=
PYTEST_ARGS ?=
# Installed-state stamp: changes whenever the pinned requirements or the package metadata change.
STAMP   := $(VENV)/.stamp-$(shell cat requirements.txt requirements-clap.txt pyproject.toml | sha1sum | cut -c1-12)
# Debian packages: tracker-module rendering (xmp), MIDI rendering (fluidsynth + GM soundfont),
# headless browser for the listening-test app's end-to-end tests (chromium + chromedriver).
APT_PACKAGES := xmp fluidsynth fluid-soundfont-gm chromium chromium-driver

.PHONY: help setup sysdeps data reproduce test test-fast lint lab bench weights listening-test listening-test-stimuli listening-test-analysis clean distclean

help:
	@echo "make reproduce [PROFILE=smoke|full] [ONLY=01,03]  set up, prepare data, run the notebooks"
	@echo "make test                                     set up, prepare data, run pytest (incl. notebooks)"
	@echo "make lint                                     ruff on the package, the app, the tests and the benchmarks"
	@echo "make lab                                      JupyterLab on notebooks/"
	@echo "make bench                                    benchmarks/ (printed tables)"
	@echo "make weights [WEIGHTS_PROFILE=cpu]            train (if needed), choose on validation, write weights/"
	@echo "make data [PROFILE=...]                       fetch and decode the real-music sources"
	@echo "make listening-test                           serve the listening-test web app on 127.0.0.1:8765"
	@echo "make listening-test-stimuli / -analysis       real stimuli (semantic EQ systems); export + notebook 12"
	@echo "make paper [PROFILE=...]                      check the artefacts, build paper/main.pdf and paper/supplement.pdf"

$(STAMP): requirements.txt requirements-clap.txt pyproject.toml
	@test -x $(PY) || { echo ">> creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo ">> installing pinned dependencies into $(VENV) (first time: several minutes, ~8 GB for torch)"
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-clap.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@rm -f $(VENV)/.stamp-*
	@touch $@

setup: $(STAMP) sysdeps

# System tools from Debian (installed when missing and we may; otherwise a clear note).
sysdeps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo ">> apt-get install$$missing"; \
	    (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  elif command -v sudo >/dev/null; then sudo apt-get install -y -qq $$missing; \
	  else echo "!! missing Debian packages:$$missing (install them; sources that need them are skipped)"; fi; \
	fi

data: setup
	$(PY) -m mastering.data prepare --profile $(PROFILE)

reproduce: data
	$(PY) -m mastering.notebooks run --profile $(PROFILE) $(if $(ONLY),--only $(ONLY),)

test: data
	$(PY) -m pytest $(PYTEST_ARGS)

# Static checks (ruff: pyflakes and pycodestyle errors; settings in pyproject.toml). CI runs it first.
lint: setup
	$(VENV)/bin/ruff check mastering listening_test tests benchmarks

# Unit tests only, without executing the notebooks.
test-fast: data
	$(PY) -m pytest -m "not notebook" $(PYTEST_ARGS)

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

LT_STIMULI ?= data/listening_test/stimuli
LT_DB ?= data/listening_test/responses.sqlite
# Serve the listening test on http://127.0.0.1:8765/ (admin token from $$LISTENING_TEST_ADMIN_TOKEN or printed).
listening-test: setup
	$(PY) -m listening_test serve --stimuli $(LT_STIMULI) --db $(LT_DB) --host 127.0.0.1 --port 8765

# Build the stimuli (WAV + manifest, loudness-matched to -23 LUFS) from the real-music test split,
# processed by the real systems under test (the semantic EQ bundle of $(PROFILE), built if missing).
LT_SYSTEMS ?= listening_test.systems:stimulus_systems
listening-test-stimuli: data
	$(PY) -m mastering.semantic build --profile $(PROFILE)
	$(PY) -m listening_test stimuli --out $(LT_STIMULI) --systems $(LT_SYSTEMS)

LT_RESPONSES ?= data/listening_test/responses.csv
# Export every stored rating and run the analysis notebook (12) on it.
listening-test-analysis: setup
	$(PY) -m listening_test export --db $(LT_DB) --out $(LT_RESPONSES)
	$(PY) -m mastering.notebooks run --profile $(PROFILE) --only 12 --param responses_csv=$(abspath $(LT_RESPONSES)) --param stimuli_dir=$(abspath $(LT_STIMULI))

# The released default weights (weights/mastering.pt + .json): every phase of the profile trained
# where no run exists, the best on validation written in float16 with its model card; and the
# semantic EQ bundle that --style needs (weights/semantic/ + semantic.json).
WEIGHTS_PROFILE ?= cpu
weights:
	$(MAKE) data PROFILE=$(WEIGHTS_PROFILE)
	$(PY) -m mastering.evaluation.release --profile $(WEIGHTS_PROFILE)
	$(PY) -m mastering.semantic.release --profile $(WEIGHTS_PROFILE)

bench: setup
	$(PY) benchmarks/bench_eq.py
	$(PY) benchmarks/bench_training.py --quick
	$(PY) benchmarks/bench_master.py --quick
	$(PY) benchmarks/bench_losses.py --quick

# LaTeX from Debian for `make paper` (the smallest set that builds paper/main.tex).
TEX_PACKAGES := latexmk texlive-latex-recommended texlive-fonts-recommended poppler-utils
PAPER_PROFILE = $(if $(filter command line environment,$(origin PROFILE)),--profile $(PROFILE),)

.PHONY: paper texdeps

texdeps:
	@if ! command -v latexmk >/dev/null || ! command -v pdflatex >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then echo ">> apt-get install $(TEX_PACKAGES)"; \
	    (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEX_PACKAGES) >/dev/null; \
	  elif command -v sudo >/dev/null; then sudo apt-get install -y -qq --no-install-recommends $(TEX_PACKAGES); \
	  else echo "!! LaTeX is missing: apt-get install $(TEX_PACKAGES)"; exit 1; fi; \
	fi

# paper/main.pdf (at most MAX_PAGES pages) and paper/supplement.pdf from the artefacts of the last
# `make reproduce`: write the code's constants, check every figure/table/number of both documents
# (missing, stale, other notebook, mixed profiles), then LaTeX. Each document cites the other's
# numbers (xr reads the other's .aux): the supplement, the paper, then the supplement again where
# the paper's numbers changed (latexmk without -g reruns only when a dependency changed).
MAX_PAGES := 10
paper: setup texdeps
	$(PY) -m mastering.paper numbers $(PAPER_PROFILE)
	$(PY) -m mastering.paper check $(PAPER_PROFILE)
	@cd paper && for step in supplement:-g main:-g supplement:-g; do doc=$${step%%:*}; \
	  echo ">> latexmk $$doc.tex"; \
	  latexmk -pdf $${step#*:} -interaction=nonstopmode -halt-on-error $$doc.tex >latexmk-$$doc.log 2>&1 \
	    || { grep -m1 -A8 '^! ' $$doc.log || tail -20 latexmk-$$doc.log; echo "!! LaTeX failed: see paper/$$doc.log"; exit 1; }; \
	done
	@for doc in main supplement; do \
	  echo ">> paper/$$doc.pdf ($$(pdfinfo paper/$$doc.pdf 2>/dev/null | awk '/^Pages/{print $$2}') pages)"; done
	@pages=$$(pdfinfo paper/main.pdf 2>/dev/null | awk '/^Pages/{print $$2}'); \
	  if [ -n "$$pages" ] && [ "$$pages" -gt $(MAX_PAGES) ]; then \
	    echo "!! paper/main.pdf has $$pages pages, more than $(MAX_PAGES): move floats or text to supplement.tex"; fi

clean:
	rm -rf build/ .pytest_cache/

distclean: clean
	rm -rf $(VENV) data/ runs/

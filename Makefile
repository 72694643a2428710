# mmrag — `make demo` runs the main job on the embedded default, `make test` runs the tests.
# Everything installs into .venv; torch is pinned first so pip never pulls a CUDA build.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed
# Debian packages the project needs at run time: tesseract for the optional OCR engine, and
# the GL/GLib runtime that OpenCV (pulled in by rapidocr) loads; chromium drives the web
# page's browser tests (Playwright launches it, never downloading its own browser).
# espeak-ng makes the speech that the audio and video tests transcribe.
# LibreOffice (no GUI) renders office documents' pages to PDF and converts DOC/PPT/XLS/RTF.
APT_PACKAGES ?= tesseract-ocr tesseract-ocr-eng libgl1 libglib2.0-0 chromium espeak-ng \
	libreoffice-writer-nogui libreoffice-impress-nogui libreoffice-calc-nogui

.PHONY: install demo lint test test-all bench eval clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@if [ -n "$(APT_PACKAGES)" ]; then \
	  missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing; fi; fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[test,milvus,ocr,server,agent,llm,gemma,media,static,office,email,heif,tables,eval,ray,tune]"
	touch $(STAMP)

demo: install
	$(VENV)/bin/mmrag demo

# ruff with the rules in pyproject.toml, mypy on the package ([tool.mypy]); CI runs both
lint: install
	$(PY) -m ruff check src
	$(PY) -m mypy src/mmrag

test: install lint
	$(PY) -m pytest -q

test-all: install
	$(PY) -m pytest -q -m ""

eval: install
	$(VENV)/bin/mmrag eval ../shared/eval-sample/queries.jsonl --docs ../shared/eval-sample/docs

bench: install
	$(PY) benchmarks/bench_ingest.py
	$(PY) benchmarks/bench_encode.py
	$(PY) benchmarks/bench_query.py

clean:
	rm -rf $(VENV) .mmrag .pytest_cache

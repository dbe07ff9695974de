# Two entry points: `make demo` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned here (pyproject declares a range for users): in an empty venv a bare `torch`
# requirement resolves to a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0

# The browser tests drive Debian's Chromium (never a browser downloaded by playwright).
CHROMIUM := /usr/bin/chromium

.PHONY: demo test clean-venv browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH_PIN)
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/latentatlas demo

# `make test` is the whole suite, browser tests included: it installs chromium where it can (root with
# apt-get) and otherwise stops with one sentence saying how; a skipped browser suite is not a pass.
browser:
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || exit 1; \
	else \
		echo "make test needs Debian's chromium at $(CHROMIUM) for the browser tests; install it with 'sudo apt-get install -y chromium' and run make test again"; \
		exit 1; \
	fi

test: $(VENV)/.installed-test browser
	@LATENTATLAS_REQUIRE_BROWSER=1 $(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; \
	exit $$rc

clean-venv:
	rm -rf $(VENV)

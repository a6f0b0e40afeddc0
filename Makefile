# tinygraph: `make demo` (the gallery), `make test` (`make test-slow`: the long-sequence tests), `make bench`.
# Each target creates .venv, installs the package with what it needs, and (demo, test) makes sure
# Graphviz's `dot` is there: installed with apt-get when missing and running as root.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test test-slow bench dot venv clean

venv: $(STAMP)

$(STAMP):
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "tinygraph needs Python 3.11 or newer; found $$($(PY) --version 2>&1)"; exit 1; }
	@$(PY) -m venv $(VENV) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing python3-venv with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; \
	    rm -rf $(VENV); $(PY) -m venv $(VENV); \
	  else echo "cannot create a venv: install python3-venv (sudo apt-get install python3-venv)"; exit 1; fi; }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[viz,charts,dev,browser]"
	@rm -f $(VENV)/.installed-*; touch $@

dot:
	@command -v dot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Graphviz (package graphviz) with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; \
	  else echo "Graphviz's 'dot' is missing: install the package 'graphviz' (sudo apt-get install graphviz)"; exit 1; fi; }
	@dot -V

demo: $(STAMP) dot
	$(BIN)/python -m demos

# `make test` skips the tests marked slow (10^5-step sequences through every view); CI runs them too
test: $(STAMP) dot
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP) dot
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) out .pytest_cache

# Two entry points: `make demo` and `make test`. Both create .venv when it is missing.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel that lies on these machines; override elsewhere, e.g.
#   make test TORCH_SPEC="torch==2.5.*" PIP_EXTRA="--index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.*
PIP_EXTRA ?=
STAMP := $(VENV)/.installed
SYSTEM_PACKAGES := bubblewrap:bwrap chromium:chromium
LAB ?= differentiation
LABS ?= differentiation linear_regression
OUT ?= out/demo

.PHONY: demo test venv system-deps build clean bench

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check $(PIP_EXTRA) "$(TORCH_SPEC)"
	$(BIN)/pip install -q --disable-pip-version-check $(PIP_EXTRA) -e ".[test]"
	@touch $@

# Debian packages the sandbox (bubblewrap) and the report's browser test (chromium) need.
system-deps:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
	  pkg=$${pair%%:*}; cmd=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing"; \
	    echo "run: sudo apt-get update && sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

build: venv
	for lab in $(LABS); do $(BIN)/autograder build $$lab || exit 1; done

SAMPLES := assignments/$(LAB)/samples
demo: venv system-deps build
	$(BIN)/autograder grade -a dist/$(LAB)/autograder.zip -o $(OUT) --summaries --question-timeout 5 $(SAMPLES)/canvas_submissions
	$(BIN)/autograder export canvas $(OUT) --gradebook $(SAMPLES)/canvas_gradebook.csv \
	    --assignment "Differentiation lab (48213)" --points 10 -o $(OUT)/canvas_import.csv
	$(BIN)/autograder report $(OUT)
	@echo
	@echo "Demo done. Outputs:"
	@echo "  grades (otter format): $(OUT)/final_grades.csv"
	@echo "  Canvas import file:    $(OUT)/canvas_import.csv"
	@echo "  HTML report:           $(OUT)/report/index.html"
	@echo "  student feedback:      $(OUT)/feedback/"

test: venv system-deps build
	$(BIN)/ruff check autograder tests bench
	$(BIN)/python -m pytest -q

bench: venv system-deps build
	$(BIN)/python bench/grade_throughput.py

clean:
	rm -rf dist out

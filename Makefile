# citygrid — two commands: `make demo` and `make test`. Everything else is set up by them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
CG := $(VENV)/bin/citygrid
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CITY ?= chaoyang
PORT ?= 8000
HOST ?= 127.0.0.1
ONLY ?=

ifeq ($(CITY),zhengzhou)
  DEMO_DB := citygrid_zhengzhou
else ifeq ($(CITY),guancheng)
  DEMO_DB := citygrid_zhengzhou
else
  DEMO_DB := citygrid
endif

.PHONY: demo test setup system stop lint bench clean-cluster

# Served as in production (gunicorn, graceful stop), not by Flask's development server.
demo: setup
	CITYGRID_TRUSTED_PROXY=$${CITYGRID_TRUSTED_PROXY:-none} $(CG) --database $(DEMO_DB) serve --prod --host $(HOST) --port $(PORT)

# Set-up only; idempotent and fast on a second run.
setup: system $(STAMP)
	$(CG) db start
	$(CG) --database citygrid load-demo chaoyang
	$(CG) --database citygrid_zhengzhou load-demo guancheng

# PostgreSQL + PostGIS (Debian packages; installed when run as root, else the exact apt command is printed).
system:
	@bash scripts/ensure_system.sh

$(STAMP): pyproject.toml
	@bash scripts/ensure_venv.sh "$(PYTHON)" "$(VENV)"
	@touch $(STAMP)

# The whole suite against the embedded cluster over its Unix socket, then once more through a TCP
# DATABASE_URL to prove that an existing PostGIS server works too.
test: setup
	$(CG) db start --tcp
	$(PY) -m pytest -q -p no:cacheprovider
	url="$$($(CG) --database postgres db url --tcp)" && \
	  DATABASE_URL="$$url" $(PY) -m pytest -q -p no:cacheprovider -m "not slow"

bench: setup
	@bash scripts/ensure_bench.sh
	$(PY) -m bench.run $(if $(ONLY),--only $(ONLY),)

stop:
	@if [ -x $(CG) ]; then $(CG) db stop; else echo "nothing to stop"; fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check . || true

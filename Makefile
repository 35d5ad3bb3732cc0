# Two commands matter on a fresh machine: `make run` (the whole product) and `make test` (the whole suite).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := .venv
PY          := $(VENV)/bin/python
RASA        := $(VENV)/bin/rasa
# A Python 3.10 that really runs (a pyenv shim for a non-selected version does not).
PYTHON310   ?= $(shell for p in $$HOME/.pyenv/versions/3.10.*/bin/python3.10 $$(command -v python3.10); do \
                 "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null && { echo "$$p"; break; }; done)
SPACY_DIR   := var/spacy/en_bankfeed
MODEL       := models/bankfeed.tar.gz
NLU_HOLDOUT := tests/nlu/holdout.yml
# What the trained model depends on: config, domain, training data, the spaCy pipeline, our NLU components.
TRAINING_INPUTS := config.yml domain.yml $(shell find data -name '*.yml' 2>/dev/null) $(SPACY_DIR)/meta.json \
                   bot/server/nlu/entity_extractor.py bot/server/nlu/sensitive_data_guard.py bot/redaction.py

# Quiet, offline, reproducible Rasa/TensorFlow.
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL   := 2
export TF_DETERMINISTIC_OPS   := 1
export PYTHONHASHSEED         := 0
export SQLALCHEMY_SILENCE_UBER_WARNING := 1

.PHONY: help run test eval install spacy model validate test-stories pytest lint lock clean agent prod-up prod-down bench bench-quick bench-profile audit

help:
	@echo "make run   - install, build, train if needed, start action server (5055) + Rasa (5005)"
	@echo "make test  - the whole test suite (ruff lint + format check, pytest, rasa data validate, rasa test stories)"
	@echo "make lint  - ruff check and ruff format --check (the same hooks: .venv/bin/pre-commit install)"
	@echo "make eval  - NLU precision/recall/F1 per class on the held-out set, written to reports/"
	@echo "make bench - benchmarks vs a stock rasa init starter, written to reports/bench.* (bench/README.md)"
	@echo "make bench-profile - server CPU per message per component (py-spy), var/bench/profile/summary.txt"
	@echo "make prod-up / prod-down - the multi-replica topology on this machine (docs/production.md)"
	@echo "make audit - pip-audit over the lock file (needs PyPI's or OSV's vulnerability data; docs/security.md)"

$(VENV)/.installed: pyproject.toml requirements/constraints.txt
	@test -x $(PY) || { test -n "$(PYTHON310)" || { echo "python3.10 not found (install it or set PYTHON310=...)"; exit 1; }; $(PYTHON310) -m venv $(VENV); }
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip==24.0
	$(PY) -m pip install -q --disable-pip-version-check -c requirements/constraints.txt -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

$(SPACY_DIR)/meta.json: $(VENV)/.installed data/banks.yml bot/nlu/spacy_pipeline.py bot/banks/directory.py
	$(PY) -m bot.nlu.spacy_pipeline $(SPACY_DIR)

spacy: $(SPACY_DIR)/meta.json

# Retrains only when config, domain, training data or the spaCy pipeline changed.
$(MODEL): $(TRAINING_INPUTS)
	$(PY) -m bot.server.train --config config.yml --domain domain.yml --data data --out models --fixed-model-name bankfeed
	@touch $@

model: $(MODEL)

run: $(MODEL)
	@scripts/run.sh

validate: install
	$(RASA) data validate --config config.yml --domain domain.yml --data data

test-stories: $(MODEL)
	$(RASA) test core --model $(MODEL) --stories tests/stories --out reports/story-test --fail-on-prediction-errors

pytest: $(MODEL)
	$(PY) -m pytest -q -p no:cacheprovider

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pre-commit validate-config .pre-commit-config.yaml

test: $(MODEL)
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory pytest
	$(MAKE) --no-print-directory validate
	$(MAKE) --no-print-directory test-stories

eval: $(MODEL)
	$(PY) -m bot.server.nlu.evaluate --model $(MODEL) --holdout $(NLU_HOLDOUT) --out reports

# The production topology on this machine (docs/production.md): 2 replicas + 2 action servers behind nginx :8080,
# PostgreSQL trackers and hand-off store, Redis locks, RabbitMQ events.
prod-up: $(MODEL)
	@scripts/prod-up.sh

prod-down:
	@scripts/prod-down.sh

# Product vs a stock `rasa init` starter under the same load: reports/bench.json + reports/bench.png
bench: $(MODEL)
	$(PY) -m bench.run $(BENCH_ARGS)

bench-quick: $(MODEL)
	$(PY) -m bench.run --quick $(BENCH_ARGS)

# Server CPU per message per component (NLU, policies, tracker load/save, action call, hand-off/radar), py-spy
# sampling `make run`'s servers. py-spy (a sampler that attaches from outside) lives in its own venv, like pip-audit.
PYSPY_VENV := var/pyspy-venv
$(PYSPY_VENV)/bin/py-spy:
	python3 -m venv $(PYSPY_VENV)
	$(PYSPY_VENV)/bin/pip install -q --disable-pip-version-check py-spy==0.4.2

bench-profile: $(MODEL) $(PYSPY_VENV)/bin/py-spy
	$(PY) -m bench.profile --py-spy $(PYSPY_VENV)/bin/py-spy $(PROFILE_ARGS)

# Creates an agent-console account (asks for the password): make agent NAME=dana [DISPLAY="Dana Smith"]
agent: install
	@test -n "$(NAME)" || { echo "usage: make agent NAME=<username> [DISPLAY=<display name>]"; exit 2; }
	$(PY) -m bot.handoff.cli migrate
	$(PY) -m bot.handoff.cli create-agent "$(NAME)" $(if $(DISPLAY),--display-name "$(DISPLAY)")

# Known vulnerabilities in the lock file. pip-audit lives in its own venv (its dependencies would not
# fit Rasa's pins); --strict fails when a package could not be checked, so a run without the
# vulnerability data (as on a machine whose registry mirror does not serve it) never passes as clean.
AUDIT_VENV := var/audit-venv
$(AUDIT_VENV)/bin/pip-audit:
	python3 -m venv $(AUDIT_VENV)
	$(AUDIT_VENV)/bin/pip install -q --disable-pip-version-check pip-audit==2.10.1

audit: $(AUDIT_VENV)/bin/pip-audit
	$(AUDIT_VENV)/bin/pip-audit -r requirements/constraints.txt --no-deps --disable-pip --strict $(AUDIT_ARGS)

# Refreshes the lock file from the current virtual environment.
lock:
	$(PY) -m pip freeze --exclude-editable --exclude bankfeed-assistant | sort -f > requirements/constraints.txt

clean:
	rm -rf models var/spacy reports/story-test

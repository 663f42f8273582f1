# Two commands matter: `make run` (the whole system locally) and `make test` (everything CI runs).
# Both create .venv-py3.13 and install the pinned dependencies on first use.

# The Lambda runtime's Python: tests, the local stack and `sam build` all run on it.
PYTHON_VERSION := 3.13
# pyenv's shim answers python3.13 only when a 3.13 version is selected: pick the newest installed.
PYENV_PYTHON = $(shell command -v pyenv >/dev/null 2>&1 && pyenv versions --bare 2>/dev/null | grep -E '^$(subst .,\.,$(PYTHON_VERSION))(\.[0-9]+)?$$' | tail -1)
PYTHON ?= $(if $(PYENV_PYTHON),PYENV_VERSION=$(PYENV_PYTHON) )python$(PYTHON_VERSION)
VENV := .venv-py$(PYTHON_VERSION)
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements/dev.txt | cksum | cut -d' ' -f1)
NEED_PYTHON := make: Python $(PYTHON_VERSION) is missing (Lambda runs python$(PYTHON_VERSION)); install it \
	(apt-get install python$(PYTHON_VERSION)-venv, or pyenv install $(PYTHON_VERSION)) or pass PYTHON=/path/to/python$(PYTHON_VERSION)
NODE_STAMP := node_modules/.installed-$(shell cat package-lock.json | cksum | cut -d' ' -f1)
# The Node and browser tests start the local stack with the venv's Python.
NODE_TEST := LOCAL_STACK_PYTHON=$(CURDIR)/$(BIN)/python node --test
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell cat requirements/checkov.txt | cksum | cut -d' ' -f1)

PORT ?= 8080
STAGE ?= dev
ENV_VARS ?=
IDLE_TIMEOUT_SECONDS ?= 600
MAX_CONNECTION_SECONDS ?= 7200
SCHEDULE_SECONDS ?=
EMAIL ?=
FUNCTION ?=
EVENT ?=

export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1
export PYTHONPATH := $(CURDIR)/layers/session_manager/python:$(CURDIR):$(CURDIR)/clients/python

LOCAL_STACK := $(BIN)/python -m local_stack
RUN_ARGS := --template template.yaml --port $(PORT) --stage $(STAGE) \
	--idle-timeout-seconds $(IDLE_TIMEOUT_SECONDS) --max-connection-seconds $(MAX_CONNECTION_SECONDS) \
	$(if $(ENV_VARS),--env-vars $(ENV_VARS)) $(if $(SCHEDULE_SECONDS),--schedule-seconds $(SCHEDULE_SECONDS))

.PHONY: help install run token invoke test rehearse unit-test local-stack-test e2e-test lint format \
	cfn-lint sam-validate sam-build checkov checkov-install speaker-user bench lock clean pr \
	node-install js-test browser-test page-site

help:
	@echo "make run          start the local stack (WebSocket API, page, embedded DynamoDB and Cognito)"
	@echo "make test         lint, template checks, sam build and every test"
	@echo "make token        print a speaker token for the running local stack (EMAIL=...)"
	@echo "make invoke       FUNCTION=<LogicalId> EVENT=events/<file>.json: run one function once"
	@echo "make bench        print the benchmarks' figures"
	@echo "make rehearse     a whole service in real time in Chromium, one report (MINUTES=90 PACE_SECONDS=20)"
	@echo "make speaker-user EMAIL=... [STACK=...]: create a speaker in a deployed stack's user pool"
	@echo "make page-site    STACK=...: the speaker and listener page as static files for a deployed stack"

$(STAMP): requirements/dev.txt
	@$(PYTHON) -c 'import sys; sys.exit("%d.%d" % sys.version_info[:2] != "$(PYTHON_VERSION)")' 2>/dev/null \
		|| { echo "$(NEED_PYTHON)" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

$(NODE_STAMP): package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@rm -f node_modules/.installed-*
	@touch $@

node-install: $(NODE_STAMP)

js-test: install $(NODE_STAMP)
	$(NODE_TEST) clients/js/test/*.test.js

# Debian's /usr/bin/chromium; without it these skip in one line, unless BROWSER_TESTS_REQUIRED=1 (CI).
browser-test: install $(NODE_STAMP)
	$(NODE_TEST) --test-concurrency=2 tests/browser/*.test.js

page-site: install
	@test -n "$(STACK)$(OUTPUTS)" || { echo "usage: make page-site STACK=<stack name> [SITE_DIR=build/page] (or OUTPUTS=<outputs.json>)" >&2; exit 2; }
	$(BIN)/python -m local_stack.local_pages --out $(or $(SITE_DIR),build/page) \
		$(if $(STACK),--stack-name $(STACK),--outputs $(OUTPUTS))

run: install
	$(LOCAL_STACK) run $(RUN_ARGS) $(if $(HTTP_PORT),--http-port $(HTTP_PORT)) $(if $(METRICS),--metrics)

token: install
	@$(LOCAL_STACK) token --port $(PORT) $(if $(EMAIL),--email $(EMAIL))

# The running stack's faults (docs/reliability.md): FAULT="dynamodb throttle rate=0.5" sets,
# FAULT=clear clears, no FAULT shows. Its HTTP port is HTTP_PORT, else the one after PORT.
FAULT ?=
.PHONY: fault
fault: install
	@$(BIN)/python -m local_stack.faults --http-port $(or $(HTTP_PORT),$(shell expr $(PORT) + 1)) "$(FAULT)"

invoke: install
	@test -n "$(FUNCTION)" -a -n "$(EVENT)" || { echo "usage: make invoke FUNCTION=<LogicalId> EVENT=events/<file>.json" >&2; exit 2; }
	@$(LOCAL_STACK) invoke --template template.yaml --function $(FUNCTION) --event $(EVENT) --port $(PORT) $(if $(ENV_VARS),--env-vars $(ENV_VARS)) $(if $(METRICS),--metrics)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

cfn-lint: install
	$(BIN)/cfn-lint template.yaml

sam-validate: install
	$(BIN)/sam validate --lint --template template.yaml --region $(AWS_DEFAULT_REGION)

# checkov in a venv of its own: its pins clash with aws-sam-cli's and cfn-lint's.
$(CHECKOV_STAMP): requirements/checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV) || { echo "$(NEED_PYTHON)" >&2; exit 1; }
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements/checkov.txt
	@rm -f $(CHECKOV_VENV)/.installed-*
	@touch $@

# Every finding is fixed or skipped in template.yaml with its reason (Metadata.checkov.skip).
checkov-install: $(CHECKOV_STAMP)

checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --compact --quiet

# The first speaker of a deployed stack (Cognito emails a temporary password; PASSWORD=ask sets a
# permanent one from a prompt instead). STACK defaults to the dev stack of samconfig.toml.
speaker-user: install
	@test -n "$(EMAIL)" || { echo "usage: make speaker-user EMAIL=<address> [STACK=<stack name>] [PASSWORD=ask]" >&2; exit 2; }
	$(BIN)/python -m scripts.create_speaker_user --email "$(EMAIL)" $(if $(STACK),--stack-name $(STACK)) $(if $(filter ask,$(PASSWORD)),--set-password)

sam-build: install
	@# SAM's Python builder runs `python3.13` from PATH: the venv's, so no system-wide install is needed.
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/sam build --template template.yaml --build-dir .aws-sam/build --cached --parallel
	@test -s .aws-sam/build/SessionManagerLayer/python/session_manager/wordlists/adjectives.txt \
		|| { echo "sam build: the domain layer lacks its word lists" >&2; exit 1; }

unit-test: install
	$(BIN)/pytest tests/unit -q

local-stack-test: install
	$(BIN)/pytest tests/local_stack -q

e2e-test: install
	$(BIN)/pytest tests/e2e -q

# The three installs (Python venv, node_modules, checkov's venv) run side by side, then the
# checks, which are single-threaded and independent, side by side too. pytest runs its files on
# TEST_WORKERS processes (pytest-xdist; a file stays on one worker, its module fixtures with it),
# handed out in collection order, longest first (tests/conftest.py), not xdist's count of tests;
# many tests wait on sockets, sweeps and rate windows, so more workers than cores still pays.
# The Node client and browser tests then run in one node --test, three files at a time.
TEST_WORKERS ?= 3
test:
	@$(MAKE) --no-print-directory -j3 install node-install checkov-install
	@$(MAKE) --no-print-directory -j4 --output-sync=target lint cfn-lint sam-validate checkov sam-build
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=20
	$(NODE_TEST) --test-concurrency=3 clients/js/test/*.test.js tests/browser/*.test.js

pr: format test

# A whole service in real time on the local stack, the page the only client (scripts/rehearse-service.mjs).
rehearse: install node-install
	LOCAL_STACK_PYTHON=$(CURDIR)/$(BIN)/python MINUTES=$(or $(MINUTES),90) PACE_SECONDS=$(or $(PACE_SECONDS),20) node scripts/rehearse-service.mjs

bench: install
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

# Against a deployed stage, bounded: LISTENERS (<= 1000), IN_FLIGHT, SECONDS (<= 600).
loadtest: install
	@test -n "$(URL)" -a -n "$(TOKEN)" || { echo "usage: make loadtest URL=wss://... TOKEN=<speaker ID token>" >&2; exit 2; }
	$(BIN)/python -m benchmarks.loadtest --url "$(URL)" --token "$(TOKEN)" \
		--listeners $(or $(LISTENERS),100) --in-flight $(or $(IN_FLIGHT),20) --seconds $(or $(SECONDS),120)

lock:
	rm -rf /tmp/lock-venv && $(PYTHON) -m venv /tmp/lock-venv
	/tmp/lock-venv/bin/pip install --quiet -r requirements/dev.in
	/tmp/lock-venv/bin/pip freeze --exclude-editable > requirements/dev.txt

clean:
	rm -rf .aws-sam .pytest_cache .ruff_cache .hypothesis

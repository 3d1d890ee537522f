# paperrec — every target sets itself up: a fresh clone needs only Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PAPERREC := $(VENV)/bin/paperrec
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_KEY := demo-key-change-me
export PAPERREC_API_KEYS ?= $(DEMO_KEY)

.PHONY: install seed run test mutation train bench bench-quality bench-day-one bench-derived bench-train bench-load bench-experiments bench-feedback bench-page page-screenshot bench-soak clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

seed: install
	$(PAPERREC) seed

run: seed
	$(PAPERREC) train --if-missing --quiet
	@echo ""
	@echo "paperrec on http://$(HOST):$(PORT)   (reader page: http://$(HOST):$(PORT)/   API docs: http://$(HOST):$(PORT)/docs)"
	@echo "API key for writes (X-API-Key): $${PAPERREC_API_KEYS%%,*}"
	@echo "demo readers: demo-diffusion, demo-agents   (try: curl 'http://$(HOST):$(PORT)/recommendations?user_id=demo-diffusion&k=5')"
	@echo ""
	$(PAPERREC) serve --host $(HOST) --port $(PORT)

test: install
	$(PY) -m pytest

# Mutation testing of the decision modules ([tool.mutmut] in pyproject.toml), then the score
# per module and each surviving mutant (README, "What the tests prove"). Resumes where the
# last run stopped; FRESH=1 starts over. A complete run takes over an hour on 2 cores; not CI.
MUTATION_STAMP := $(VENV)/.mutation-stamp
$(MUTATION_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,mutation]'
	touch $(MUTATION_STAMP)

mutation: $(MUTATION_STAMP)
	$(PY) -m benchmarks.mutation $(if $(FRESH),--fresh)

# Nightly job: refit from the store, compare with the serving model, promote if not worse.
train: install
	$(PAPERREC) train

# Every benchmark; each prints its own table.
bench: bench-quality bench-day-one bench-derived bench-train bench-load bench-experiments bench-feedback bench-page

bench-quality: install
	$(PY) -m benchmarks.quality

# Papers published after the nightly fit, added to it as the service adds them, against a
# fit that had them in its catalog (half of the papers nobody reads in train, at random).
bench-day-one: install
	$(PY) -m benchmarks.day_one

# The hybrid on sets derived from CiteULike-a and MovieLens in other shapes (small sites,
# titles only, new papers, a daily-papers feed with made-up times, alone and with papers
# nobody reads, no timestamps, kinds that say nothing, one-paper readers, a global time
# cut), against an EASE peer.
bench-derived: install
	$(PY) -m benchmarks.derived

bench-train: install
	$(PY) -m benchmarks.train

# Locust at 8/32/64 clients (on BENCH_DB, a PostgreSQL URL of an empty database, when given;
# REPLICAS API processes), then SQLite vs PostgreSQL and 1 vs 2 replicas with batched ingest
# (a throwaway PostgreSQL server of its own), then the long crash-durability variant.
BENCH_DB ?=
REPLICAS ?= 1
bench-load: install
	$(PY) -m benchmarks.load $(if $(BENCH_DB),--db $(BENCH_DB)) --replicas $(REPLICAS)
	$(PY) -m benchmarks.compare
	$(PY) -m pytest -q -m slow tests/test_durability.py

bench-experiments: install
	$(PY) -m benchmarks.experiments

# Simulated readers who dismiss and who tire of what they looked past: clicks per reader with
# the negative-feedback step and without (paired, 95% interval). `--choose` re-plays the grid
# the strengths in recommender/serving/feedback.py were chosen on.
bench-feedback: install
	$(PY) -m benchmarks.feedback

# The reader page against the JSON list it shows, and /search over CiteULike-a, in process.
bench-page: install
	$(PY) -m benchmarks.page

# docs/reader-page.png, taken by the browser test (needs chromium + chromium-driver).
page-screenshot: install
	PAPERREC_SCREENSHOT_DIR=docs $(PY) -m pytest -q tests/test_reader_page_browser.py

# Mixed traffic for MINUTES (default 10) with a read-only and a disk-full episode: RSS, fds,
# database size and p99 every 30 s; writes bench-results/soak.md, soak.json, soak.png.
MINUTES ?= 10
bench-soak: install
	$(PY) -m benchmarks.soak --minutes $(MINUTES)

clean:
	rm -rf $(VENV) data .pytest_cache .hypothesis mutants

# The two commands of the README:
#   make        set up, build the patched wheels for both bases, print the patch status
#   make test   set up the test environment and run the suite
PYTHON ?= python3.11
DEV := build/venv-dev
TEST := build/venv-test
WS = $(DEV)/bin/python -m wafer_sglang


.PHONY: all dev-env test-env wheels status lint test test-fast benchmark release clean

all: wheels status

dev-env:
	PYTHON=$(PYTHON) scripts/venv $(DEV) requirements/tooling.txt

test-env:
	PYTHON=$(PYTHON) scripts/venv $(TEST) requirements/test.txt
	scripts/system-deps

# Every base x Python its record lists (patches/bases.toml `pythons`; `wafer-sglang bases --builds`).
wheels: dev-env
	@builds=$$($(WS) bases --builds) || exit 1; echo "$$builds" | while read -r base python; do \
	  $(WS) build --base $$base --python $$python || exit 1; done
	$(WS) build --tools

status: dev-env
	$(WS) patches lint
	$(WS) patches status
	@newest=$$($(WS) bases --builds | tail -n 1 | cut -d' ' -f1); \
	  $(WS) patches check-upstream --against $$newest

# The same checks as .pre-commit-config.yaml, at the versions requirements/test.txt pins.
lint: test-env
	$(TEST)/bin/ruff check .
	$(TEST)/bin/ruff format --check .
	$(TEST)/bin/actionlint .github/workflows/*.yml
	scripts/check-large-files

# pytest exits 5 when it collected no test: that is a failure here, never a pass.
PYTEST = @$(TEST)/bin/python -m pytest $(1); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# Three pytest workers per core: many tests wait on servers, locks or timed load steps (with 4
# workers on 2 cores the suite kept ~1.7 cores busy); PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 2) * 3 )))

# --durations: the slowest tests in every log, for the suite's time budget (README "Tests").
test: lint
	$(call PYTEST,-n $(PYTEST_WORKERS) --dist loadfile --durations=25 $(PYTEST_ARGS))

# The edit loop: no downloads, no venv installs, no real servers.
test-fast: test-env
	$(call PYTEST,-n $(PYTEST_WORKERS) --dist loadfile -m "not slow and not network" $(PYTEST_ARGS))

# A script of benchmark/ with the test venv; test/ is on its path for the helpers it shares with the
# tests (test/support/): make benchmark B=bench_client ARGS="--tok-s 26000"
benchmark: test-env
	@test -n "$(B)" || { echo 'make benchmark B=NAME (a benchmark/NAME.py) [ARGS="..."]' >&2; exit 2; }
	PYTHONPATH=test $(TEST)/bin/python benchmark/$(B).py $(ARGS)

# Every wheel of a tagged clean commit, checked, with SHA256SUMS, notes and SBOMs in
# build/release/<tag>/ (the release workflow uploads it; wafer-sglang release --help).
release: dev-env
	$(WS) release

clean:
	rm -rf build dist *.egg-info

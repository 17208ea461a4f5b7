# The two commands of the README:
#   make        set up, build the patched wheels for both bases, print the patch status
#   make test   set up the test environment and run the suite
PYTHON ?= python3.11
DEV := build/venv-dev
TEST := build/venv-test
# base:python pairs; cp310 is 0.5.14's derived tag (patches/bases.toml) for its Python 3.10 ROCm images
BUILDS := 0.5.14:3.10 0.5.14:3.11 0.5.14:3.12 0.5.23:3.11 0.5.23:3.12
WS = $(DEV)/bin/python -m wafer_sglang

.PHONY: all dev-env test-env wheels status test clean

all: wheels status

dev-env:
	PYTHON=$(PYTHON) scripts/venv $(DEV) requirements/tooling.txt

test-env:
	PYTHON=$(PYTHON) scripts/venv $(TEST) requirements/test.txt
	scripts/system-deps

wheels: dev-env
	@for pair in $(BUILDS); do \
	  $(WS) build --base $${pair%%:*} --python $${pair##*:} || exit 1; done

status: dev-env
	$(WS) patches lint
	$(WS) patches status
	$(WS) patches check-upstream --base 0.5.14 --against 0.5.23

# pytest exits 5 when it collected no test: that is a failure here, never a pass.
test: test-env
	@$(TEST)/bin/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: no tests were collected" >&2; exit 1; fi; exit $$rc

clean:
	rm -rf build dist *.egg-info

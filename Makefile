# Ferry — the two commands a newcomer needs: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# pytest-xdist workers for `make test` (auto: one per core; the suite mostly waits on servers,
# so e.g. TEST_WORKERS=4 on 2 cores is faster still)
TEST_WORKERS ?= auto

.PHONY: demo test lint bench fmt lock clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)  ## set up and open Ferry on its embedded demo server with sample cases
	$(BIN)/ferry demo

test: $(STAMP)  ## lint, types, import contracts, then the whole suite against real servers on 127.0.0.1 (pytest-xdist: one worker per core)
	$(BIN)/ruff check backend tui tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadgroup

lint: $(STAMP)  ## ruff, mypy ([tool.mypy]) and the import contracts ([tool.importlinter])
	$(BIN)/ruff check backend tui tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

fmt: $(STAMP)
	$(BIN)/ruff check --fix backend tui tests bench

bench: $(STAMP)  ## benchmarks against OpenSSH sftp / cp measured in the same run
	$(BIN)/python -m bench

lock:  ## record the versions tested into constraints.txt
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^caseferry' > constraints.txt

clean:
	rm -rf $(VENV) build *.egg-info

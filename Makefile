# Two commands do all set-up on a fresh clone:
#   make demo   -- create .venv, install skiplab, run the main job
#   make test   -- create .venv, install skiplab with test extras, run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch first and alone, pinned to the CPU build range (never a CUDA build).
TORCH  := torch>=2.4,<2.14

.PHONY: demo test install clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[test]"   # test includes the deploy extra (onnx, torchao...)
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/skiplab study

test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache

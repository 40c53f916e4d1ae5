# Two commands do all set-up on a fresh clone:
#   make demo   -- create .venv, install skiplab, run the main job
#   make test   -- create .venv, install skiplab with test extras, lint, check the format, run the tests
#   make format -- lay out src/ and tests/ with ruff format (what make test checks)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch first and alone, pinned to the CPU build range (never a CUDA build).
TORCH  := torch>=2.4,<2.14

.PHONY: demo test format install clean sar-default-model

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
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

format: install
	$(BIN)/ruff format src tests

# Ship a SAR autoencoder as the packaged default model: strip it to
# what inference needs, check <= 10 MB, measure it on the real scenes, and write
# src/skiplab/sar/weights/sar_ae_default.pt and its card sar_ae_default.json.
#   make sar-default-model CHECKPOINT=runs/sar-default/checkpoints/best.pt [DTYPE=bfloat16]
DTYPE ?= float32
sar-default-model: install
	@test -n "$(CHECKPOINT)" || { echo "make sar-default-model: set CHECKPOINT=path/to/best.pt" >&2; exit 2; }
	$(BIN)/python benchmarks/sar_default_model.py ship "$(CHECKPOINT)" --dtype $(DTYPE)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache

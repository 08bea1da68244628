# signed-saliency: `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ARCHIVES ?= $(or $(SIGNED_SALIENCY_ARCHIVES),../shared/datasets)
DATA ?= $(or $(SIGNED_SALIENCY_DATA),data)
PROFILE ?= auto
ONLY ?=
SEEDS ?=
JOBS ?=
# A closed explorer tab leaves its kernel (and its model and data, ~2 GB for Imagenette) running: shut down
# kernels that no browser has been connected to for 5 minutes, checking every minute.
# share/jupyter/voila/templates/signed-saliency is Voila's lab template without its CDN stylesheets.
# Kernels talk over IPC sockets (no "running over TCP without encryption" warning); the notebook, committed
# without outputs, is marked trusted first (no "not trusted" warning).
EXPLORE_OPTIONS := --template=signed-saliency --KernelManager.transport=ipc \
	--MappingKernelManager.cull_idle_timeout=300 --MappingKernelManager.cull_interval=60 \
	--MappingKernelManager.cull_connected=False

.DEFAULT_GOAL := help
.PHONY: help venv data browser test lint reproduce demo train bench explore lab clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e ".[notebooks,workflow,test,bench]"
	touch $@

venv: $(VENV)/.installed ## create .venv and install the pinned dependencies (torch 2.14.1 from local disk)

data: venv ## fill the data root from the offline archives when they exist (a rerun skips what is done)
	@if [ -f "$(ARCHIVES)/materialize.py" ]; then \
		$(PY) "$(ARCHIVES)/materialize.py" "$(DATA)"; \
	else \
		echo "no offline archives at $(ARCHIVES) (no materialize.py there): set SIGNED_SALIENCY_ARCHIVES to the folder with MANIFEST.json, materialize.py and the archives, or fill $(DATA) yourself"; \
	fi

browser: ## install Debian's chromium for the explorer's browser test, when missing (needs apt-get, as root)
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

test: venv data browser ## set up and run the test suite
	$(PY) -m pytest

lint: venv ## ruff check and format check
	$(VENV)/bin/ruff check lib tests benchmarks
	$(VENV)/bin/ruff format --check lib tests benchmarks

reproduce: venv data ## run the chain's Snakemake workflow: PROFILE=auto|smoke|demo|quick|paper (auto: paper with CUDA, else quick), ONLY=cifar10/cnn, SEEDS=42,43, JOBS=1 (default 2), NUMERICS=fast (default reproducible)
	$(PY) -m signed_saliency.reproduce --profile $(PROFILE) $(if $(JOBS),--jobs $(JOBS)) $(if $(ONLY),--only $(ONLY)) \
		$(if $(SEEDS),--seeds $(SEEDS)) $(if $(NUMERICS),--numerics $(NUMERICS))

demo: venv ## a first look in under 5 minutes: the CIFAR-10 CNN, its maps, deletion curves and controls, in figures/demo/
	$(PY) -m signed_saliency.reproduce --profile demo $(if $(wildcard $(ARCHIVES)/materialize.py),--archives $(ARCHIVES))

train: venv data ## train + evaluate the CIFAR-10 CNN alone with the paper's settings (50 epochs)
	$(PY) -m signed_saliency.training --dataset cifar10 --model cnn --epochs 50

bench: venv data ## time ours against a per-class loop, Captum, Quantus and the floors; writes benchmarks/results.md
	$(PY) -m benchmarks

explore: venv data ## serve the explorer (notebooks/05_explore.ipynb) as a Voila app on 127.0.0.1:8866
	$(VENV)/bin/jupyter trust notebooks/05_explore.ipynb > /dev/null
	JUPYTER_PATH=share/jupyter $(VENV)/bin/voila notebooks/05_explore.ipynb --port=8866 --Voila.ip=127.0.0.1 \
		$(EXPLORE_OPTIONS)

lab: venv data ## open the notebooks in JupyterLab to read along (run them top to bottom; defaults take seconds)
	$(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/

clean: ## remove build outputs (keeps data/, checkpoints/ and .venv)
	rm -rf build .pytest_cache

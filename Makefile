# Two commands set everything up on a fresh machine:
#   make train   -- the embedded default: poster_var_tiny on synthetic faces, CPU, < 5 minutes
#   make test    -- the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: train test env clean-env

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[test]"
	$(PY) -c "import torch, torchvision, pyro, netcal; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
	touch $@

train: env
	$(PY) scripts/svi_train.py $(ARGS)

test: env
	$(PY) -m pytest $(PYTEST_ARGS)

clean-env:
	rm -rf $(VENV)

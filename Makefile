# The two commands of the README. Each builds its own virtual environment
# from nothing, so a fresh clone needs only python3 (>= 3.10) and make.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# the CPU build of torch first, so nothing pulls a CUDA build later
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[torch,examples,report,postgresql,ray,tensorboard,mlflow,lightning,transformers,sb3,dashboard,dev]'
	touch $@

demo: $(STAMP)
	$(VENV)/bin/populace run examples/digits_mlp.py --store runs/digits.db

test: $(STAMP)
	$(PY) -m pytest

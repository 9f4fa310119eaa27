# Convenience targets; the README's two commands call the scripts directly (make may be absent on a fresh machine).
.PHONY: setup test demo lint bench clean

setup:
	bash scripts/setup.sh

test:
	bash scripts/test.sh

demo:
	bash scripts/demo.sh

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

clean:
	rm -rf build install log .pytest_cache

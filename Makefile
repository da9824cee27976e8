.PHONY: test check fmt demo bench-tpch

# Everything CI runs: lint, build, all tests.
test:
	bash scripts/test.sh

check: test

fmt:
	cargo fmt
	python3 -m ruff format python tests benchmarks
	python3 -m ruff check --fix python tests benchmarks

demo:
	pip install . && python3 -m lakewave demo

bench-tpch:
	python3 benchmarks/tpch/run.py --scale 1

.PHONY: test check fmt demo bench-tpch bench-propagation bench-offload bench-lakehouse

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

bench-propagation:
	python3 benchmarks/propagation/run.py --seconds 20

bench-offload:
	python3 benchmarks/offload/run.py --scale 1

bench-lakehouse:
	python3 benchmarks/lakehouse/run.py --scale 1

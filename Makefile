# Grid Atlas — the two commands: `make demo` (set up everything and serve) and `make test`.
.PHONY: demo test setup bench lint db-up db-down

demo: setup
	.venv/bin/gridatlas demo

test: setup
	.venv/bin/ruff check gis api layers cli tests bench
	.venv/bin/python -m pytest

setup:
	bash scripts/bootstrap.sh

bench: setup
	.venv/bin/python bench/import_osm.py

lint: setup
	.venv/bin/ruff check gis api layers cli tests bench

db-up: setup
	.venv/bin/gridatlas db up

db-down:
	.venv/bin/gridatlas db down

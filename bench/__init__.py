"""Benchmarks (run as scripts: `python bench/ingest.py`, `python bench/query.py`); see README.md."""

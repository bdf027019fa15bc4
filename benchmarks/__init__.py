"""Performance and quality benchmarks of the pipeline: ``python -m benchmarks [name] [--quick]``.

Targets live here, never in unit tests. Every benchmark measures its baseline in the same run
and prints a ratio against it, so the numbers compare on any machine. See README.md.
"""

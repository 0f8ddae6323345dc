"""Ferry's benchmarks (``make bench``): each ``bench/bench_*.py`` module has ``main() -> None``
and prints its table of figures and ratios against a reference measured in the same run."""

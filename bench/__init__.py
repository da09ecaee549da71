"""Benchmarks: every bridge figure is measured next to a bare-asyncua baseline in the same run."""

"""Benchmarks (``make bench``): medians of repeated runs, compared as ratios against
baselines measured in the same run. Never timed assertions: figures, not pass/fail.
"""

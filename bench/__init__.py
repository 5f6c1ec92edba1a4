"""`make bench`: what learners and teachers feel, each figure beside a baseline from the same run.

Never asserted: it prints one table and writes it to bench/results.md.
"""

"""The benchmark suite behind `difflab bench` and benchmarks/bench_e2e.py.

Library code for measuring difflab against its peers: the suite registry and ratio extraction
(`suite`, `ratios`), training under a wall-clock budget (`budget`) and diffusers' unconditional
training example as the end-to-end peer (`peer`). Nothing else in difflab imports this package.
"""

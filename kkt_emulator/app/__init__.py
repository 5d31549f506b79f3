"""The application layer: a whole installation wired together, its benchmarks and its scenarios.

Only this layer and the command line above it see every part (cloud, OFD, tills, control plane).
"""

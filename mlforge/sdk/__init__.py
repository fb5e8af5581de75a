"""The Python SDK: `MLForgeClient(...)` and its feature store, on the core packages.

May import: every core package but `mlforge.cli`.
"""

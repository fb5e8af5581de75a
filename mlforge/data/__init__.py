"""Raw data: reading sources, storing one validated parquet per day, data-quality checks, DVC
versions of the raw bytes, and the drift simulator of the demos.

May import: `mlforge.config`, `mlforge.io`, `mlforge.errors`.
"""

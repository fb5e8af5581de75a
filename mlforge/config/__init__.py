"""Configuration: the project spec (`mlforge.yaml` → typed objects), the loaded project, settings.

May import: `mlforge.errors`, `mlforge.io`, and `mlforge.models.metrics` (metric names). Imported
by every other package.
"""

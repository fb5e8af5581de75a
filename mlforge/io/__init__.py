"""Storage and time: one storage abstraction (local folder or S3, atomic writes) and the date
arithmetic of the one daily partitioning.

May import: `mlforge.errors`, `mlforge.config`. No Dagster, FastAPI or MLflow.
"""

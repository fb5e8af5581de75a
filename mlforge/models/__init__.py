"""Models: training sets and training, metrics with their directions, the promotion gate,
registration, MLflow tracking and the registry, batch predictions, lineage to the raw bytes.

May import: `mlforge.config`, `mlforge.io`, `mlforge.data`, `mlforge.features`, `mlforge.errors`.
MLflow and XGBoost are imported inside the functions that need them.
"""

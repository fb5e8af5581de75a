"""MLForge serving: deployed endpoints over HTTP (`serving.app.create_app`, `python -m serving`).

Kept free of heavy imports: importing this package loads nothing; `serving.app` loads FastAPI,
numpy, prometheus_client and xgboost only (never dagster, mlflow, pandas, polars or evidently).
"""

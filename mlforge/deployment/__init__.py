"""Deployment: manifests (the only thing serving reads), the variants each strategy deploys,
routing, live rollout decisions (canary, champion-challenger) and writing an endpoint's rollout.

May import: `mlforge.config`, `mlforge.io`, `mlforge.features`, `mlforge.models`,
`mlforge.monitoring.prediction_log`, `mlforge.errors`.
"""

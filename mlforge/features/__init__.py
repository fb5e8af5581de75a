"""Features: feature references, snapshots as of a day, the offline store and point-in-time join,
the online store (embedded SQLite, Redis), labels, and the Feast-style `FeatureStore` API.

May import: `mlforge.config`, `mlforge.io`, `mlforge.data`, `mlforge.errors`. `refs` stays free of
polars so that serving can import it.
"""

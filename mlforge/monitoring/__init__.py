"""Monitoring: the prediction log, drift (Evidently), live performance once labels mature,
alerts with their open/resolved state, and the `mlforge monitor` report.

May import: every core package but `mlforge.cli` and `mlforge.sdk`. Evidently is imported inside
the drift functions.
"""

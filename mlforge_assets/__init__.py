"""The Dagster graph of an MLForge project: one module per stage, automation, the code location.

Only wires: every stage calls one core function (`mlforge.*`) through `stage.stage_asset`.
"""

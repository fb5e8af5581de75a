"""Deployment: manifests (what an endpoint serves), the strategies' plans and live-metric decisions,
routing, and the typed rollout state and summaries the CLI, the monitor report and the assets share."""

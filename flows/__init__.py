"""Prefect flows that compose the `tasks` wrappers: per-stage flows, `distill_pipeline`,
deployments with schedules and event triggers, and the `pst serve` / `pst quickstart` commands.
"""

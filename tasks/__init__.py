"""Prefect task wrappers: one thin, retryable, cached `@task` per pst_core stage.

Each wrapper takes plain values (the store root, names, a config dict), calls one pst_core
function, publishes its UI artifacts and returns a small JSON-able summary whose `outputs` lists
the store paths it produced (see `tasks.policy` for the retry and cache rules).
"""

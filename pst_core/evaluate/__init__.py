"""Evaluation: the strategies' inference rules, accuracy with bootstrap intervals, reports, experiments.

Modules: `config` (EvalConfig), `generate` (batched greedy generation that stops per row),
`metrics` (accuracy and its 95 % bootstrap interval), `runner` (`evaluate_run`: a run dir ->
predictions.parquet + metrics.json), `report` (all runs -> Markdown + PNG), `robustness`
(perturbation experiment driver and plot). Importing the package stays cheap: torch,
transformers and matplotlib are imported inside the functions that need them.
"""

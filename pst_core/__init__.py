"""pst_core: the PST distillation library (plain Python; no Prefect, heavy imports are lazy).

Stages: tasks/examples -> teacher rationales -> embeddings -> student training -> evaluation.
Each stage is a module with one frozen config dataclass and plain functions, so it can be
called from a notebook, a CLI command or a Prefect task alike.
"""

__version__ = "0.1.0"

"""Rationale harvesting from any OpenAI-compatible teacher, exactly once per request.

`harvest(HarvestConfig(...), root)` is the sync entry point (Prefect tasks call it); the
rationale store under `<root>/rationales/` is the request cache.
"""

from pst_core.harvest.config import HarvestConfig
from pst_core.harvest.harvester import harvest
from pst_core.harvest.summary import HarvestSummary

__all__ = ["HarvestConfig", "HarvestSummary", "harvest"]

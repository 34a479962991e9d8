"""The replay teacher: an OpenAI-compatible server answering from recorded teacher outputs."""

from pst_core.replay.records import Index, Record, load
from pst_core.replay.server import Faults, Handle, running, serve

__all__ = ["Faults", "Handle", "Index", "Record", "load", "running", "serve"]

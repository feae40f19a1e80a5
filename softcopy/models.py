"""Imports every table module so that SQLModel.metadata knows the whole schema."""

from softcopy.ingestion import models as ingestion_models
from softcopy.memory import tables as memory_tables

__all__ = ["ingestion_models", "memory_tables"]

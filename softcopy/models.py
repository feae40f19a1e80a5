"""Imports every table module so that SQLModel.metadata knows the whole schema."""

from softcopy.memory import tables as memory_tables

__all__ = ["memory_tables"]

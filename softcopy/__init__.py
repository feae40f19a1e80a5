"""softcopy: a Jupyter-native control plane that ingests digital memory, day by day."""

__version__ = "0.1.0"

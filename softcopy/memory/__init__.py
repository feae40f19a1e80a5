"""Stage primitives: sources, export → embed → publish, the ledger, the cache, the index.

Nothing here knows about jobs; the control plane orchestrates these functions.
"""

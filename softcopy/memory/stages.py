"""The stage vocabulary of the memory layer: the three stages, in the order data flows
through them, and how the last attempt of one ended. The control plane re-exports both
from `softcopy.ingestion.states`; the stage table (which function runs a stage) is
`softcopy.memory.pipeline.STAGE_FUNCTIONS`."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """The three stages, in the order data flows through them."""

    export = "export"  # source day → JSONL shard
    embed = "embed"  # shard → vectors
    publish = "publish"  # vectors + shard → search index rows

    @property
    def upstream(self) -> Stage | None:
        order = list(Stage)
        i = order.index(self)
        return order[i - 1] if i else None


class Outcome(StrEnum):
    """How the last attempt of a stage on a (source, day) ended, as the ledger records it."""

    ok = "ok"  # done; the digests describe what was written
    failed = "failed"  # the last attempt failed; the digests still describe the last good run

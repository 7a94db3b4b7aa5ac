"""The sweep engine: runs rotations over the ports, one file per concern.

- ``rotator``: ``Rotator``, the entry point: a sweep, recovery, closing; one guard around each rotation.
- ``steps``: the steps of one rotation, top to bottom as DESIGN.md draws them, each returning its outcome.
- ``context``: ``SweepScope`` (one sweep's request, time and memos) and ``RotationContext`` (one rotation's facts).
- ``concurrency``: the pool, the per-target slots, and the order rotations are handed to it.
- ``commit``: group commit of claims, state loads, audit appends and closings.
- ``recovery``: open intents of free pairs closed as ``interrupted`` and rotated again.
- ``once``: ``Once``, computing each key once per sweep (source reads, verifications).

No adapter, adapter library or configuration library is imported here (import-linter checks it).
"""

from service.engine.options import RotatorOptions
from service.engine.rotator import Rotator

__all__ = ["Rotator", "RotatorOptions"]

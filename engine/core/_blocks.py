"""Where the blocks of one block-wise action run: here, one after another, or spread over workers.

Block-wise actions (``infer`` and ``local_thickness`` of a scan kept on disk) cut their work into
blocks that read the scan from chunked storage and write their part of the result to chunked storage,
each block to chunks of its own (no two blocks share a chunk, so no write races and no locks). A block
computes exactly what the same block computes in one process, so the result does not depend on where
the blocks ran.

Where they run is a run setting, like the device (``damselfly run MACRO --cluster ADDRESS``), not a
macro argument: the session's ``blocks`` setting is a *block runner*, a callable
``runner(fn, items, shared)`` that yields ``(i, fn(shared, items[i]))`` for every item, in any order (the Dask
one is :class:`damselfly.macros.cluster.DaskBlocks`). The session makes it current while an action runs
(:func:`running`), as it does the progress reporter, and actions find it with :func:`current`: it
changes where blocks run, never what they compute, so it is not an argument. ``None`` runs them here
(:func:`serial`).

A block can only run elsewhere when everything it reads and writes can be reopened there: a Zarr array
on disk can (it pickles as its location), an array in this process's memory cannot
(:func:`shareable`); actions then run their blocks here.

Examples
--------
>>> def square(shared, item):
...     return shared * item * item
>>> run_blocks(None, square, [1, 2, 3], shared=10, message="Squaring")
[10, 40, 90]
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from . import progress

#: ``runner(fn, items, shared)`` -> an iterable of ``(i, fn(shared, items[i]))``, in any order.
BlockRunner = Callable[[Callable, Sequence, Any], Iterable]


_current: contextvars.ContextVar[BlockRunner | None] = contextvars.ContextVar("damselfly_blocks", default=None)


def current() -> BlockRunner | None:
    """The block runner of the run in progress (``None``: blocks run here)."""
    return _current.get()


@contextlib.contextmanager
def running(runner: BlockRunner | None):
    """Make ``runner`` the current block runner inside the ``with`` block."""
    token = _current.set(runner)
    try:
        yield
    finally:
        _current.reset(token)


def serial(fn: Callable, items: Sequence, shared: Any = None) -> Iterator:
    """The default block runner: every block in this process, in order."""
    for i, item in enumerate(items):
        yield i, fn(shared, item)


def run_blocks(runner: BlockRunner | None, fn: Callable, items: Sequence, shared: Any = None,
               message: str = "Blocks", size: Callable | None = None) -> list:
    """Run ``fn(shared, item)`` for every item through ``runner`` (``None``: :func:`serial`), with progress
    as blocks finish (in blocks, or in the units ``size(item)`` counts, e.g. slices) and Stop between
    blocks; returns the results in the items' order.

    ``fn`` must be a module-level function, and ``shared`` and the items picklable, for a runner that
    sends them to other processes.
    """
    size = size or (lambda item: 1)
    task = progress.task(message, total=sum(size(i) for i in items))
    results = [None] * len(items)
    it = iter((runner or serial)(fn, items, shared))
    try:
        for i, r in it:
            results[i] = r
            task.advance(size(items[i]))
    finally:
        close = getattr(it, "close", None)
        if close is not None:  # a runner's generator cancels the blocks still queued
            close()
    task.finish()
    return results


def span(r: tuple[int, int]) -> int:
    """The length of a range ``(start, stop)``: slices of a slab, the unit of slab-wise progress."""
    return r[1] - r[0]


def runner_for(*arrays) -> BlockRunner | None:
    """The current block runner if every array can go to its workers (:func:`shareable`), else ``None``
    (blocks run here): how block-wise code picks where its blocks run."""
    return current() if shareable(*arrays) else None


def shareable(*arrays) -> bool:
    """Whether every array can be reopened by another process from where it lies: a Zarr array on disk
    (``None`` counts, as nothing to share). In-memory arrays, memory maps and HDF5 datasets are not."""
    for a in arrays:
        if a is None:
            continue
        store = getattr(a, "store", None)
        local = any(c.__name__ == "LocalStore" for c in type(store).__mro__)  # also the confined store inputs use
        if store is None or type(a).__module__.split(".")[0] != "zarr" or not local:
            return False
    return True

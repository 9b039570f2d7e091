"""Real batches in an order that is a function of (seed, position): nothing to save, exact resume.

:class:`BatchSource` serves the trainer's real batches. Batch ``p`` (``p`` = the number of
discriminator steps done) is the same tensor whichever way it is produced: read from memory,
decoded in this process, or decoded ahead by ``torch.utils.data.DataLoader`` worker processes.
A run resumed at any position therefore sees exactly the batches an uninterrupted run sees, and
the loader simply starts again from the resume position (no loader state is checkpointed).
"""
from __future__ import annotations

import itertools
import weakref

import torch

__all__ = ["BatchSource"]


def _limit_worker_threads(_worker_id: int) -> None:
    # Every worker decodes one image at a time; torch threads inside workers would only compete
    # with the training process for its cores.
    torch.set_num_threads(1)


class _Order:
    """The image order: epoch ``e`` is a permutation seeded with ``seed * 1_000_003 + e``; batch ``i``
    of an epoch is slice ``i * world + rank`` of it. Kept apart from :class:`BatchSource` so that a
    loader's sampler does not hold the source (which would keep it, and its workers, alive)."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int, world: int):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.per_epoch = n // (batch_size * world)
        self._perm_epoch, self._perm = None, None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if self._perm_epoch != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm

    def indices(self, position: int) -> torch.Tensor:
        epoch, i = divmod(position, self.per_epoch)
        start = (i * self.world + self.rank) * self.batch_size
        return self._permutation(epoch)[start:start + self.batch_size]


class _PositionBatches(torch.utils.data.Sampler):
    """Index lists of batches ``start, start + 1, ...`` (endless)."""

    def __init__(self, order: _Order, start: int):
        self.order, self.start = order, start

    def __iter__(self):
        for position in itertools.count(self.start):
            yield self.order.indices(position).tolist()


def _shutdown(state: dict) -> None:
    it = state.pop("iter", None)
    if it is not None and hasattr(it, "_shutdown_workers"):
        it._shutdown_workers()


class BatchSource:
    """Real batches in a fixed order derived from (seed, position): no state to save.

    Image data: an epoch is a permutation of the data set drawn from a generator seeded with
    (seed, epoch); batch i of an epoch takes the i-th slice (the last incomplete slice is
    dropped). With several processes each takes its own slice of the same permutation.
    Toy data: each batch is sampled from a generator seeded with (seed, position).

    Args:
        data: a toy distribution (``.sample(n, generator=)``, no ``__len__``) or an image data set
            (``ds[i]`` -> uint8 ``(C, H, W)``; ``ds.images``, uint8 ``(N, C, H, W)``, when it is held
            in memory).
        batch_size: images per batch and per process.
        seed: the run's seed.
        rank, world: this process and the number of processes (each takes its own slice).
        workers: ``DataLoader`` worker processes that decode images ahead of the training loop.
            Used only for data decoded on the fly (no ``images`` tensor); in-memory and toy data
            are served directly (there is nothing to decode). 0: decode in this process.
        pin_memory: return page-locked batches, so that ``.to("cuda", non_blocking=True)`` copies
            asynchronously (use it when training on CUDA).

    ``batch(position)`` returns batch ``position`` (uint8 ``(batch_size, C, H, W)`` for images,
    float ``(batch_size, 2)`` for toy data); consecutive positions are served from the loader's
    prefetched batches, any other position restarts the loader there. ``iterate(start)`` yields
    batches ``start, start + 1, ...``. ``close()`` stops the workers (also done when the source is
    garbage-collected).
    """

    def __init__(self, data, batch_size: int, seed: int, rank: int = 0, world: int = 1, workers: int = 0,
                 pin_memory: bool = False):
        if not isinstance(workers, int) or workers < 0:
            raise ValueError(f"data.workers must be a non-negative integer, got {workers!r}")
        self.data, self.batch_size, self.seed, self.rank, self.world = data, batch_size, seed, rank, world
        self.workers, self.pin_memory = workers, bool(pin_memory)
        self.toy = not hasattr(data, "__len__")
        if not self.toy:
            self._order = _Order(len(data), batch_size, seed, rank, world)
            self.per_epoch = self._order.per_epoch
            if self.per_epoch < 1:
                raise ValueError(f"data set has {len(data)} items, fewer than one batch of {batch_size * world}")
        self._loader: dict = {}  # "iter": the running DataLoader iterator, "next": the position it yields next
        self._finalizer = weakref.finalize(self, _shutdown, self._loader)

    # ---------------------------------------------------------------------------------- the order
    def indices(self, position: int) -> torch.Tensor:
        """Data set indices (int64 ``(batch_size,)``) of image batch ``position`` for this process."""
        if self.toy:
            raise TypeError("toy data has no indices: its batches are sampled")
        return self._order.indices(position)

    @property
    def uses_loader(self) -> bool:
        """Whether batches come from DataLoader workers (lazily decoded image data and workers > 0)."""
        return not self.toy and self.workers > 0 and getattr(self.data, "images", None) is None

    # ---------------------------------------------------------------------------------- batches
    def _direct(self, position: int) -> torch.Tensor:
        if self.toy:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + position) * 64 + self.rank)
            return self.data.sample(self.batch_size, generator=g)
        idx = self.indices(position)
        images = getattr(self.data, "images", None)
        out = images[idx] if images is not None else torch.stack([self.data[int(j)] for j in idx])
        return out.pin_memory() if self.pin_memory else out

    def _make_loader(self, start: int):
        # its own _Order: the sampler runs ahead of the trainer and must not hold this source
        order = _Order(len(self.data), self.batch_size, self.seed, self.rank, self.world)
        return torch.utils.data.DataLoader(
            self.data, batch_sampler=_PositionBatches(order, start), num_workers=self.workers,
            pin_memory=self.pin_memory, worker_init_fn=_limit_worker_threads, persistent_workers=False,
            # Starting a loader draws the workers' base seed from this generator; without it the draw
            # would come from the global RNG and shift the trainer's noise vectors.
            generator=torch.Generator().manual_seed(self.seed))

    def batch(self, position: int) -> torch.Tensor:
        """Batch ``position`` (see the class docstring for shapes)."""
        if not self.uses_loader:
            return self._direct(position)
        if self._loader.get("next") != position:
            self.close()
            self._loader["iter"] = iter(self._make_loader(position))
        out = next(self._loader["iter"])
        self._loader["next"] = position + 1
        return out

    def iterate(self, start: int = 0):
        """Batches ``start, start + 1, ...`` (endless); with workers, from a loader started at ``start``."""
        if not self.uses_loader:
            for position in itertools.count(start):
                yield self._direct(position)
            return
        loader = iter(self._make_loader(start))
        try:
            yield from loader
        finally:
            _shutdown({"iter": loader})

    def close(self) -> None:
        """Stop the DataLoader workers, if any are running (the next ``batch`` starts new ones)."""
        _shutdown(self._loader)
        self._loader.pop("next", None)

    def __enter__(self) -> "BatchSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

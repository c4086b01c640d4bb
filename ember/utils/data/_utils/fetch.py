"""Fetchers: turn one (possibly batched) sampler index into data, in a worker or the main process.

Mirrors ``torch/utils/data/_utils/fetch.py``, including batched ``__getitems__`` fetches.
"""
from __future__ import annotations

from .collate import _StackedSamples, default_collate


class _BaseDatasetFetcher:
    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        self.dataset = dataset
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        self.drop_last = drop_last

    def fetch(self, possibly_batched_index):
        raise NotImplementedError


class _IterableDatasetFetcher(_BaseDatasetFetcher):
    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        super().__init__(dataset, auto_collation, collate_fn, drop_last)
        self.dataset_iter = iter(dataset)
        self.ended = False

    def fetch(self, possibly_batched_index):
        if self.ended:
            raise StopIteration
        if self.auto_collation:
            data = []
            for _ in possibly_batched_index:
                try:
                    data.append(next(self.dataset_iter))
                except StopIteration:
                    self.ended = True
                    break
            if len(data) == 0 or (self.drop_last and len(data) < len(possibly_batched_index)):
                raise StopIteration
        else:
            data = next(self.dataset_iter)
        return self.collate_fn(data)


class _MapDatasetFetcher(_BaseDatasetFetcher):
    failed_index = None  # the dataset index whose ``__getitem__`` raised, for the error

    def fetch(self, possibly_batched_index):
        self.failed_index = None
        if self.auto_collation:
            # A dataset may fetch a whole batch at once (torch's ``__getitems__`` protocol).
            getitems = getattr(self.dataset, "__getitems__", None)
            if getitems:
                data = getitems(possibly_batched_index)
                if type(data) is _StackedSamples and self.collate_fn is not default_collate:
                    data = list(data)  # other collate functions get the plain list torch gives
            else:
                data = []
                for idx in possibly_batched_index:
                    self.failed_index = idx
                    data.append(self.dataset[idx])
                self.failed_index = None
        else:
            self.failed_index = possibly_batched_index
            data = self.dataset[possibly_batched_index]
            self.failed_index = None
        return self.collate_fn(data)

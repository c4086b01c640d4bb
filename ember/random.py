"""Random number generation: ``Generator``, seeding and RNG state.

Streams come from NumPy's PCG64; they are reproducible under a seed but are
not PyTorch's Mersenne-Twister streams (a documented difference).
"""
from __future__ import annotations

import os
import random as _pyrandom

import numpy as np


class Generator:
    """A seedable random stream, passed to sampling functions as ``generator=``."""

    def __init__(self, device="cpu"):
        from ._backend import device as _device
        self.device = _device(device)
        self._seed = 67280421310721  # PyTorch's default seed
        self._npg = None

    @property
    def _np(self) -> "np.random.Generator":
        """The NumPy stream, made on first draw (``numpy.random`` takes ~8 ms to import,
        a sixth of ``import ember``'s budget)."""
        if self._npg is None:
            self._npg = np.random.Generator(np.random.PCG64(self._seed))
        return self._npg

    @_np.setter
    def _np(self, generator) -> None:
        self._npg = generator

    def manual_seed(self, seed) -> "Generator":
        seed = int(seed)
        if seed < -0x8000000000000000 or seed > 0xFFFFFFFFFFFFFFFF:
            raise RuntimeError(f"Overflow when unpacking long long: {seed}")
        self._seed = seed & 0xFFFFFFFFFFFFFFFF
        self._npg = None  # the stream restarts from the seed at the next draw
        return self

    def seed(self) -> int:
        s = int.from_bytes(os.urandom(8), "little")  # (SeedSequence() imports secrets: slow)
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self):
        """The full stream state as a uint8 tensor (JSON of the PCG64 state)."""
        from ._creation import tensor
        from ._dtype import uint8
        import json  # here, not at module level: json's import compiles regexes (import time)
        blob = json.dumps({"seed": self._seed, "state": self._np.bit_generator.state})
        return tensor(list(blob.encode()), dtype=uint8)

    def set_state(self, new_state) -> "Generator":
        from ._tensor import Tensor
        if not isinstance(new_state, Tensor) or new_state.dtype.name != "uint8":
            raise TypeError("expected a torch.ByteTensor as the RNG state")
        import json
        try:
            d = json.loads(bytes(new_state.numpy().tolist()).decode())
            self._np.bit_generator.state = d["state"]
            self._seed = int(d["seed"])
        except (ValueError, KeyError, TypeError) as e:
            raise RuntimeError(f"Invalid RNG state: {e}") from None
        return self

    def __getstate__(self):
        return {"device": str(self.device), "seed": self._seed,
                "state": self._np.bit_generator.state}

    def __setstate__(self, d):
        from ._backend import device as _device
        self.device = _device(d["device"])
        self._seed = d["seed"]
        self._npg = None
        self._np.bit_generator.state = d["state"]


default_generator = Generator()
default_generator.seed()  # each process starts from a fresh seed, as PyTorch's does


def _gen(generator) -> np.random.Generator:
    g = default_generator if generator is None else generator
    if not isinstance(g, Generator):
        raise TypeError(f"generator must be an ember.Generator, not {type(g).__name__}")
    return g._np


def manual_seed(seed) -> Generator:
    """Seed the default generator (and, like PyTorch, only ember's stream)."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(new_state) -> None:
    default_generator.set_state(new_state)


def fork_rng_states():
    """Every RNG state a checkpoint needs: ember's, NumPy's global and Python's."""
    return {"ember": get_rng_state(), "numpy": np.random.get_state(),
            "python": _pyrandom.getstate()}

"""Weights enums and the model registry (torchvision.models._api)."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

__all__ = ["Weights", "WeightsEnum", "register_model", "get_model", "get_model_builder",
           "get_model_weights", "get_weight", "list_models"]


@dataclass
class Weights:
    """One set of pretrained weights: where they live (``url``), the inference transform they
    expect (``transforms``, called to build it) and what is known of them (``meta``)."""

    url: str
    transforms: Callable
    meta: dict[str, Any] = field(default_factory=dict)

    def __eq__(self, other) -> bool:
        # partials compare by identity, so compare what they were made of
        if not isinstance(other, Weights):
            return NotImplemented
        if self.url != other.url or self.meta != other.meta:
            return False
        a, b = self.transforms, other.transforms
        if hasattr(a, "func") and hasattr(b, "func"):
            return a.func == b.func and a.args == b.args and a.keywords == b.keywords
        return a == b


class WeightsEnum(Enum):
    """The weights a model builder can load; each member's value is a ``Weights``."""

    @classmethod
    def verify(cls, obj):
        """``obj`` as a member: a member, its name ('IMAGENET1K_V1' or
        'ResNet18_Weights.IMAGENET1K_V1') or None."""
        if obj is None:
            return None
        if isinstance(obj, str):
            obj = cls[obj.replace(cls.__name__ + ".", "")]
        elif not isinstance(obj, cls):
            raise TypeError(f"Invalid Weight class provided; expected {cls.__name__} but "
                            f"received {obj.__class__.__name__}.")
        return obj

    def get_state_dict(self, *args, **kwargs):
        """The state dict, from the hub cache (``ember.hub.load_state_dict_from_url``: it
        downloads only when the file is not cached); read with ``weights_only=True`` unless
        asked otherwise, since a weights file holds only tensors."""
        from ember.hub import load_state_dict_from_url
        kwargs.setdefault("weights_only", True)
        return load_state_dict_from_url(self.url, *args, **kwargs)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}.{self._name_}"

    @property
    def url(self) -> str:
        return self.value.url

    @property
    def transforms(self):
        return self.value.transforms

    @property
    def meta(self) -> dict:
        return self.value.meta


BUILTIN_MODELS: dict[str, Callable] = {}


def register_model(name: str | None = None):
    """Decorator adding a builder to the registry under ``name`` (its own name by default)."""
    def wrapper(fn):
        key = name if name is not None else fn.__name__
        if key in BUILTIN_MODELS:
            raise ValueError(f"An entry is already registered under the name '{key}'.")
        BUILTIN_MODELS[key] = fn
        return fn
    return wrapper


def list_models(module=None, include=None, exclude=None) -> list[str]:
    """Sorted names of the registered builders (of ``module`` only, when given)."""
    import fnmatch
    names = [k for k, v in BUILTIN_MODELS.items()
             if module is None or v.__module__.rsplit(".", 1)[0] == module.__name__]
    if include:
        pats = [include] if isinstance(include, str) else include
        names = [n for n in names if any(fnmatch.fnmatch(n, p) for p in pats)]
    if exclude:
        pats = [exclude] if isinstance(exclude, str) else exclude
        names = [n for n in names if not any(fnmatch.fnmatch(n, p) for p in pats)]
    return sorted(names)


def get_model_builder(name: str) -> Callable:
    """The builder registered as ``name``."""
    name = name.lower()
    try:
        return BUILTIN_MODELS[name]
    except KeyError:
        raise ValueError(f"Unknown model {name}") from None


def get_model(name: str, **config):
    """``get_model_builder(name)(**config)``."""
    return get_model_builder(name)(**config)


def get_model_weights(name):
    """The WeightsEnum of a builder (given as a name or the builder itself)."""
    fn = get_model_builder(name) if isinstance(name, str) else name
    return _weights_of[fn]


_weights_of: dict[Callable, type] = {}


def get_weight(name: str) -> WeightsEnum:
    """A member from its full name, e.g. 'ResNet18_Weights.IMAGENET1K_V1'."""
    try:
        enum_name, value_name = name.split(".")
    except ValueError:
        raise ValueError(f"Invalid weight name provided: '{name}'.") from None
    models = sys.modules["ember.vision.models"]
    for mod_name in dir(models):
        obj = getattr(models, mod_name)
        if isinstance(obj, type) and issubclass(obj, WeightsEnum) and obj.__name__ == enum_name:
            return obj[value_name]
    raise ValueError(f"The weight enum '{enum_name}' for the specific method couldn't be "
                     "retrieved.")

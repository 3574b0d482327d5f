"""Registries: the names a config may use, and the classes behind them (gates, clusterers, heads, calibrators, baselines)."""

from __future__ import annotations

import importlib
from collections.abc import Callable


class Registry:
    """Names a config may use -> the classes that implement them (a dict and a `register` decorator).

    The config sits under every stage, so it names the built-in implementations by where they
    live ("module:Class", like an entry point) instead of importing them; `get` imports one the
    first time it is asked for. Anything else registers itself with `@REGISTRY.register("name")`
    (a test's toy, a new gate in its own file), and a config may then name it.
    """

    def __init__(self, kind: str, builtin: dict[str, str]):
        self.kind = kind
        self._builtin = dict(builtin)  # name -> "module:Class", imported on first use
        self._classes: dict[str, type] = {}

    def register(self, name: str) -> Callable[[type], type]:
        def add(cls: type) -> type:
            # A name means one class: a second one under it is a mistake, not an override.
            taken = self._builtin.get(name) or (name in self._classes and _where(self._classes[name]))
            if taken and taken != _where(cls):
                raise ValueError(f"{self.kind} {name!r} is already registered to {taken}, not {_where(cls)}")
            self._classes[name] = cls
            return cls

        return add

    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self._builtin, *self._classes]))

    def __contains__(self, name: object) -> bool:
        return name in self._builtin or name in self._classes

    def get(self, name: str, role: str | None = None) -> type:
        """The class registered as `name`; a ValueError naming the choices when there is none."""
        if name not in self:
            raise ValueError(f"unknown {role or self.kind} {name!r}: choose {', '.join(self.names())}")
        if name not in self._classes:
            module, cls = self._builtin[name].split(":")
            self._classes[name] = getattr(importlib.import_module(module), cls)
        return self._classes[name]

    def check(self, name: str, field: str) -> None:
        if name not in self:
            raise ValueError(f"{field} must be one of {', '.join(map(repr, self.names()))}, got {name!r}")


def _where(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"

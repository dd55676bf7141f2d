"""One adapter per sender kind; `get_adapter(kind)` finds it."""

from __future__ import annotations

import importlib

from service.webhooks.adapters.base import Adapter

_ADAPTERS: dict[str, Adapter] = {}


def register(adapter: Adapter) -> Adapter:
    _ADAPTERS[adapter.kind] = adapter
    return adapter


def get_adapter(kind: str) -> Adapter:
    _load()
    return _ADAPTERS[kind]


def kinds() -> list[str]:
    _load()
    return sorted(_ADAPTERS)


def _load() -> None:
    # Imported here, not at module import: each adapter module registers itself.
    for name in ("hubspot", "pipedrive", "salesforce", "standard"):
        importlib.import_module(f"{__name__}.{name}")

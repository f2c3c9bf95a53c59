"""Module-local Pyro parameters without touching Pyro's global settings.

Our parameters live on their modules, not in Pyro's global parameter store: netcal's
calibrators clear that store, and two networks with the same layer names would share one
entry. Pyro offers this as a global setting; a library that set it on import would break
its users' own Pyro code (their PyroParams would stop reaching the store). So every one of
our PyroModules enters the setting itself, when it is built and whenever it is called.
"""
from __future__ import annotations

import contextlib

import pyro
from pyro.nn import PyroModule


def local_params() -> contextlib.AbstractContextManager:
    """A ``with`` block in which PyroModules keep their parameters to themselves."""
    return pyro.settings.context(module_local_params=True)


class LocalPyroModule(PyroModule):
    """A PyroModule with module-local parameters whatever the caller's Pyro setting.

    Pyro fixes a module's parameter scope when the module is built, so both building and
    calling happen inside :func:`local_params`.
    """

    def __init__(self, name: str = "") -> None:
        with local_params():
            super().__init__(name)

    def __call__(self, *args, **kwargs):
        with local_params():
            return super().__call__(*args, **kwargs)

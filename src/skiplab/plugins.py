"""Domain plugins: packages that add tasks and data kinds to the core through its registries
(:func:`skiplab.train.register_task`, :func:`skiplab.data.register_data_kind`).

The core (blocks, models, data, train, analysis) never imports a domain package: imports run
one way, from the domain (e.g. :mod:`skiplab.sar`) to the core. A registry that misses a name
(``get_task("reconstruct")``, ``parse_data_spec("sar:PATH")``) or lists its names calls
:func:`load_plugins`, which imports the built-in plugins named below (by string, at run time)
and any installed package's entry point in the group ``skiplab.plugins``, once per process.

Why lazily, on a miss, rather than ``import skiplab.sar`` in ``skiplab/__init__.py`` (as timm
registers all models on import)? Every ``import skiplab.<anything>`` runs
``skiplab/__init__.py`` first, so that import would load train/, data/ and analysis/ for a
user who only wants ``skiplab.models``, and undo the one-way layering. Lazily, ``import
skiplab`` stays light, ``fit(TrainConfig(task="reconstruct", ...))`` and ``skiplab train --task
reconstruct`` work without importing :mod:`skiplab.sar` first, and a third-party package plugs
in the same way as ours.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

# Built-in domain packages, imported on the first registry miss.
BUILTIN_PLUGINS = ("skiplab.sar",)
ENTRY_POINT_GROUP = "skiplab.plugins"

_loaded = False


def load_plugins() -> None:
    """Import the built-in domain packages and the ``skiplab.plugins`` entry points (once);
    importing a plugin runs its ``register_*`` calls."""
    global _loaded
    if _loaded:
        return
    _loaded = True  # set first: a plugin's own imports may consult a registry again
    for name in BUILTIN_PLUGINS:
        importlib.import_module(name)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        entry.load()

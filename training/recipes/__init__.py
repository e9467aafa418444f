"""Ready-made jobs as typed replacements of the defaults (never override strings).

- :mod:`~training.recipes.demo` — the README's demo (``make demo``);
- :mod:`~training.recipes.smoke` — ``--smoke-test``: every entry point at its smallest size.

Layers, top to bottom (checked by make lint): demo | smoke
"""

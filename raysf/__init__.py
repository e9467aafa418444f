"""Shared, Ray-free utilities of the project: configuration, storage, the console.

- :mod:`raysf.config` — typed configuration loading: YAML plus ``key=value`` overrides to a tree
  of frozen dataclasses, every key and type checked;
- :mod:`raysf.errors` — expected failures and how the entry points report them (one line, a
  traceback only with ``--verbose``);
- :mod:`raysf.clip_spec` — how a clip is cut from a video and fed to a network (:class:`ClipSpec`);
- :mod:`raysf.manifest` — the dataset manifest (``manifest.json``) and its typed view;
- :mod:`raysf.flip_labels` — what a horizontal flip does to a dataset's labels (pairs it swaps,
  or not allowed);
- :mod:`raysf.entry` — the entry points' one command line (config, overrides, ``--smoke-test``,
  ``--address``, console flags) and run wrapper;
- :mod:`raysf.storage` — where data lives: a :class:`~raysf.storage.StorageLocation` (the URI,
  its resolved filesystem, the path in it) resolved once from :class:`~raysf.storage.S3Config`,
  and file operations on local paths and S3 alike, with retries;
- :mod:`raysf.runtime` — joining or starting Ray, reading a manifest;
- :mod:`raysf.console` — the console session of a command: its lines, the events from Ray
  workers, the log folder that stderr and Ray's worker output go to;
- :mod:`raysf.display` — progress displays (count, rate, ETA) drawn on the console, and the
  formatting of durations and paths;
- :mod:`raysf.ray_output` — Ray's worker output on the driver, routed through the console.

Layers, top to bottom (checked by make lint): entry | runtime > display | ray_output | manifest | storage > console | clip_spec | flip_labels | config | errors
"""

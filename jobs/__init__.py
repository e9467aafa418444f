"""Entry points: each module parses its arguments into typed configs and calls the library
(:mod:`training`, :mod:`pipelines`). They never import one another.

- ``python -m jobs.ingest``   videos -> clip records (:mod:`pipelines.ingest`)
- ``python -m jobs.train``    Ray Train DDP (:mod:`training.trainer`)
- ``python -m jobs.evaluate`` the test-view protocol (:mod:`training.evaluate`)
- ``python -m jobs.predict``  top-5 for videos, folders, datasets (:mod:`training.predict`)
- ``python -m jobs.tune``     Ray Tune ablation sweeps (:mod:`training.tune`)
- ``python -m jobs.demo``     the README's demo (:mod:`training.demo`)
"""

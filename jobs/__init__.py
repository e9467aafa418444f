"""Entry points: each module parses its arguments into typed configs and calls the library
(:mod:`training`, :mod:`pipelines`). They never import one another; :mod:`jobs.cli` (the
``raysf`` command) dispatches to them.

- ``raysf ingest``   / ``python -m jobs.ingest``   videos -> clip records (:mod:`pipelines.ingest.run`)
- ``raysf train``    / ``python -m jobs.train``    Ray Train DDP (:mod:`training.run.trainer`)
- ``raysf evaluate`` / ``python -m jobs.evaluate`` the test-view protocol (:mod:`training.inference.evaluate`)
- ``raysf predict``  / ``python -m jobs.predict``  top-5 for videos, folders, datasets
- ``raysf tune``     / ``python -m jobs.tune``     Ray Tune ablation sweeps (:mod:`training.tune`)
- ``raysf table``    / ``python -m jobs.table``    one seeded table from several sweeps (:mod:`training.tune.combine`)
- ``raysf export``   / ``python -m jobs.export``   TorchScript / ExportedProgram / ONNX
- ``raysf serve``    / ``python -m jobs.serve``    the model behind HTTP on Ray Serve (:mod:`training.serving`)
- ``raysf demo``     / ``python -m jobs.demo``     the README's demo (:mod:`training.recipes.demo`)

``raysf COMMAND`` runs ``jobs/COMMAND.py`` (:mod:`jobs.cli`, the one module that imports them).
Each opens one console session (:mod:`raysf.console`): progress on stdout, Ray's logs in files.
"""

"""The ``raysf`` command: one subcommand per entry point, the same arguments as each module.

    raysf ingest   [CONFIG] --videos ROOT --out URI [key=value ...]   (jobs.ingest)
    raysf train    [CONFIG] [key=value ...]                           (jobs.train)
    raysf evaluate CHECKPOINT [key=value ...]                         (jobs.evaluate)
    raysf predict  CHECKPOINT VIDEO... | FOLDER | DATASET_URI         (jobs.predict)
    raysf tune     [CONFIG] [key=value ...]                           (jobs.tune)
    raysf table    SWEEP.json... [--baseline KEY] [--out DIR]         (jobs.table)
    raysf export   CHECKPOINT --format torchscript|exported-program|onnx [--out PATH]
    raysf serve    CHECKPOINT|EXPORT [--port] [--replicas N] [--device cpu|cuda]  (jobs.serve)
    raysf demo                                                        (jobs.demo)

Every subcommand takes ``--smoke-test`` (the real code path at the smallest size on generated
data), ``--verbose`` (Ray's and the libraries' logs on the console) and ``--log-dir``.
``python -m jobs.<command> ...`` is the same command (what ``ray job submit`` runs).

This is the one module that imports the entry points (to dispatch); they never import each
other (import-linter's independence contract in pyproject.toml).
"""

from __future__ import annotations

import sys

from jobs import demo, evaluate, export, ingest, predict, serve, table, train, tune

#: The entry points in the order ``raysf --help`` lists them, each with its one-line summary.
#: ``raysf COMMAND`` is the module ``jobs/COMMAND.py``: the name is taken from the module.
_ENTRY_POINTS = (
    (ingest, "videos -> clip records (Ray Data)"),
    (train, "train SlowFast with Ray Train DDP"),
    (evaluate, "the 10x3-view test protocol on a checkpoint"),
    (predict, "top-5 for video files, a folder or a dataset"),
    (tune, "Ray Tune ablation sweeps (alpha, beta, fusion, ...)"),
    (table, "one seeded table from several sweeps' --json files"),
    (export, "a checkpoint as TorchScript, ExportedProgram or ONNX"),
    (serve, "the model behind HTTP on Ray Serve (classify, timeline)"),
    (demo, "the README's demo, end to end"),
)
COMMANDS = {
    module.__name__.rpartition(".")[2]: (module.main, about) for module, about in _ENTRY_POINTS
}


def usage() -> str:
    lines = ["usage: raysf COMMAND [ARGS...]   (raysf COMMAND --help for its arguments)", ""]
    lines += [f"  {name:<9} {about}" for name, (_, about) in COMMANDS.items()]
    lines += [
        "",
        "Every command takes --smoke-test, --verbose and --log-dir; those with a YAML config",
        "take it as the first argument (default: jobs/<command>.yaml) and dotted.key=value",
        "overrides after it.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"raysf: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    return COMMANDS[command][0](rest)


if __name__ == "__main__":
    sys.exit(main())

"""The ``cytophen`` command: a thin layer over the Python API.

Subcommands live in their own modules and are imported only when used, so ``cytophen --version``
and ``cytophen info`` start fast.
"""

from __future__ import annotations

import importlib
import sys

import click

from cytophen._version import __version__

# name -> (module, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "info": ("cytophen.cli.info", "info", "Describe an FCS file: version, events, channels, spillover."),
    "compensation": ("cytophen.cli.compensation", "compensation", "Show or compute spillover matrices."),
    "validate": ("cytophen.cli.validate", "validate", "Check a template (and optionally a sample) for every problem."),
    "convert": ("cytophen.cli.convert", "convert", "Convert a FlowJo workspace or GatingML file to a cytophen template."),
    "gate": ("cytophen.cli.gate", "gate", "Gate FCS files with a template; write tables, gates and errors."),
    "simulate": ("cytophen.cli.simulate", "simulate", "Write simulated FCS files with ground truth."),
    "score": ("cytophen.cli.simulate", "score", "Score gating results against simulator truth."),
    "demo": ("cytophen.cli.demo", "demo", "Simulate the study cohort, gate it, analyse it, report it."),
    "merge": ("cytophen.cli.clinical", "merge", "Merge population tables with a manifest and clinical table."),
    "stats": ("cytophen.cli.clinical", "stats", "Longitudinal statistics of a merged table."),
    "report": ("cytophen.cli.report", "report", "Write a self-contained HTML report of a results folder."),
    "templates": ("cytophen.cli.templates", "templates", "List, show or copy the gating templates shipped with cytophen."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)  # imported when used: fast start

    def format_commands(self, ctx, formatter):
        rows = [(n, COMMANDS[n][2]) for n in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="cytophen")
def cli() -> None:
    """cytophen: flow-cytometry gating and immunophenotyping."""


def main(argv=None) -> int:
    """Entry point. Exit codes: 0 ok, 1 some samples failed, 2 bad invocation or invalid template."""
    try:
        rv = cli.main(args=argv, prog_name="cytophen", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.exceptions.ClickException as exc:
        exc.show()
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except OSError as exc:  # the file system refused what the up-front checks could not foresee
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"Error: {exc.strerror or exc}{where}", err=True)
        return 2
    return int(rv or 0)


def run() -> None:
    """The ``cytophen`` console script: :func:`main`, then exit without tearing the interpreter
    down.

    Every output is written (atomically) and closed by the time :func:`main` returns. What a
    normal exit would still do is run the ``atexit`` handlers, which is done here too, and then
    free every module and object one by one; for a process that has loaded numba's kernels and
    pandas that teardown took 0.1-0.9 s of CPU, all of it time a user waits for the prompt.
    Only this entry point does it: :func:`main` itself returns normally (tests, notebooks).
    """
    import atexit
    import os

    code = main()
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed or broken pipe: nothing left to say
                pass
        os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()

"""The ``poisonscan`` command line: parse options, run the library, map the outcome to an exit code.

Exit codes: 0 when no finding is at or above ``--fail-on``, 1 when one is, 2 when the scan could not
run (a bad option, an unreadable input, an unwritable output). Errors a user can fix print one line,
``poisonscan: error: ...``, on stderr and never a traceback.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from poisonscan import __version__
from poisonscan.config import DETECTOR_IDS, FAIL_ON_CHOICES, ScanConfig
from poisonscan.errors import ConfigError, PoisonscanError
from poisonscan.io.records import Shape
from poisonscan.report import WRITERS, exit_code, write_report
from poisonscan.report.progress import make_progress
from poisonscan.report.suspects import SUSPECT_WRITERS, suspects_writer, write_suspects

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _fail(message: str) -> int:
    click.echo(f"poisonscan: error: {message}", err=True)
    return EXIT_ERROR


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


class PoisonscanGroup(click.Group):
    """A group whose default command is ``scan``, and which owns the exit-code policy.

    The default-command rule: when the first argument is neither a subcommand name nor one of the
    group's own options (``--help``, ``-h``, ``--version``), all arguments go to ``scan``. So
    ``poisonscan data/`` means ``poisonscan scan data/``; a path that is named like a subcommand is
    scanned with an explicit ``poisonscan scan scan``.
    """

    default_command = "scan"
    own_options = ("--help", "-h", "--version")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Send the arguments to ``scan`` unless they start with a subcommand or a group option."""
        if args and args[0] not in self.commands and args[0] not in self.own_options:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command and exit with 0, 1 or 2; user errors become one line on stderr."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        prog_name = prog_name or "poisonscan"
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else EXIT_CLEAN
        except click.exceptions.NoArgsIsHelpError as e:
            click.echo(e.ctx.get_help())
            code = EXIT_CLEAN
        except click.UsageError as e:
            hint = ""
            if e.ctx is not None:
                hint = f" (see '{e.ctx.command_path} --help')"
            code = _fail(_one_line(e.format_message()) + hint)
        except click.ClickException as e:
            code = _fail(_one_line(e.format_message()))
        except click.Abort:
            code = _fail("interrupted")
        except PoisonscanError as e:
            code = _fail(_one_line(str(e)))
        except OSError as e:
            if e.errno == errno.EPIPE:  # the reader of our output went away (e.g. `| head`)
                code = EXIT_ERROR
            else:
                where = f": {e.filename}" if e.filename else ""
                code = _fail(f"{e.strerror or e}{where}")
        sys.exit(code)


def _split_detectors(values: tuple[str, ...]) -> tuple[str, ...] | None:
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    return tuple(dict.fromkeys(names)) or None


def _check_output_dir(option: str, path: str | None) -> None:
    """Fail before scanning when an output could never be written, not after a long scan."""
    if path is None:
        return
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise ConfigError(f"{option}: directory {str(parent)!r} of {path!r} does not exist")
    if Path(path).is_dir():
        raise ConfigError(f"{option}: {path!r} is a directory; give a file name")


@click.group(
    cls=PoisonscanGroup,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(
    __version__, "--version", prog_name="poisonscan", message="%(prog)s %(version)s"
)
def cli() -> None:
    """Find data-poisoning backdoors in LLM training data before training on it.

    `poisonscan PATH...` is short for `poisonscan scan PATH...`.
    """


@cli.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(sorted(WRITERS)),
    default="table",
    show_default=True,
    help="Report format: "
    + "; ".join(f"{w.name}: {w.description}" for w in WRITERS.values())
    + ".",
)
@click.option("-o", "--output", metavar="FILE", help="Write the report to FILE instead of stdout.")
@click.option(
    "--suspects",
    metavar="FILE",
    help="Export one row per (suspect document, finding); the format follows the extension: "
    + ", ".join(SUSPECT_WRITERS)
    + ".",
)
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON_CHOICES),
    default="high",
    show_default=True,
    help="Exit with code 1 when a finding has this severity or higher.",
)
@click.option(
    "--skip-bad-records",
    is_flag=True,
    help="Count and skip unreadable records instead of stopping with exit code 2.",
)
@click.option("--text-field", metavar="NAME", help="Text column of plain-text records.")
@click.option("--id-field", metavar="NAME", help="Record id column (default: 'id' when present).")
@click.option(
    "--shape",
    type=click.Choice([s.value for s in Shape]),
    help="Record shape of every file (default: detected per file).",
)
@click.option("-j", "--jobs", type=int, metavar="N", help="Worker processes (default: all cores).")
@click.option(
    "--memory-budget", metavar="SIZE", help="Memory for counting per worker, e.g. 512MB or 2GiB."
)
@click.option(
    "--detectors",
    multiple=True,
    metavar="A,B",
    help="Detectors to run, comma-separated or repeated "
    f"(default: all of {', '.join(DETECTOR_IDS)}).",
)
@click.option(
    "--min-documents",
    type=int,
    metavar="N",
    help="Report a trigger only when at least N documents contain it.",
)
@click.option("--seed", type=int, metavar="N", help="Seed of every hash family (default: 0).")
@click.option("-q", "--quiet", is_flag=True, help="No progress display and no notes on stderr.")
def scan(
    paths: tuple[str, ...],
    fmt: str,
    output: str | None,
    suspects: str | None,
    fail_on: str,
    skip_bad_records: bool,
    text_field: str | None,
    id_field: str | None,
    shape: str | None,
    jobs: int | None,
    memory_budget: str | None,
    detectors: tuple[str, ...],
    min_documents: int | None,
    seed: int | None,
    quiet: bool,
) -> int:
    """Scan files, directories (recursive) and globs for poisoning triggers.

    Exit code 0: no finding at or above --fail-on; 1: at least one; 2: the scan could not run.
    """
    # Options left out keep ScanConfig's defaults, so defaults live in one place.
    given: dict[str, Any] = {
        "shape": shape,
        "text_field": text_field,
        "id_field": id_field,
        "jobs": jobs,
        "memory_budget": memory_budget,
        "detectors": _split_detectors(detectors),
        "min_documents": min_documents,
        "seed": seed,
    }
    config = ScanConfig(
        paths=paths,
        fail_on=fail_on,
        skip_bad_records=skip_bad_records,
        **{k: v for k, v in given.items() if v is not None},
    )
    if suspects is not None:
        suspects_writer(suspects)
    _check_output_dir("--output", output)
    _check_output_dir("--suspects", suspects)

    from poisonscan.engine.scan import run_scan  # heavy imports only when scanning

    with make_progress(quiet) as progress:
        result = run_scan(config, progress=progress)
    write_report(result, fmt, output)
    if suspects is not None:
        write_suspects(result.findings, suspects)
    if not quiet:
        for label, path in (("report", output), ("suspects", suspects)):
            if path is not None:
                click.echo(f"poisonscan: wrote {label} to {path}", err=True)
    return exit_code(result)


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()

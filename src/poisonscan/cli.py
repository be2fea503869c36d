"""The ``poisonscan`` command line: parse options, run the library, map the outcome to an exit code.

Exit codes: 0 when no finding is at or above ``--fail-on``, 1 when one is, 2 when the scan could not
run (a bad option, an unreadable input, an unwritable output). Errors a user can fix print one line,
``poisonscan: error: ...``, on stderr and never a traceback.
"""

from __future__ import annotations

import dataclasses
import errno
import gc
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from click.core import ParameterSource

from poisonscan import __version__, configfile
from poisonscan import baseline as baseline_mod
from poisonscan import manifest as manifest_mod
from poisonscan.config import DETECTOR_IDS, EXECUTOR_CHOICES, FAIL_ON_CHOICES, ScanConfig
from poisonscan.configfile import Effective
from poisonscan.errors import ConfigError, PoisonscanError
from poisonscan.io.discover import discover_inputs, unsupported_compression
from poisonscan.io.filesystems import is_remote
from poisonscan.io.records import Shape
from poisonscan.manifest import InputHasher
from poisonscan.report import WRITERS, exit_code, write_report
from poisonscan.report.json import DOCUMENTS_ARTIFACT
from poisonscan.report.progress import make_progress
from poisonscan.report.suspects import SUSPECT_WRITERS, suspects_writer, write_suspects
from poisonscan.report.visible import safe_message
from poisonscan.triggers import write_triggers

if TYPE_CHECKING:
    from poisonscan.engine.scan import ScanResult

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _err(message: str) -> None:
    """A line on stderr. Messages name files, ids and triggers from the data: their control and
    invisible characters are shown, not sent to the terminal (see report.visible)."""
    click.echo(safe_message(message), err=True)


def _fail(message: str) -> int:
    _err(f"poisonscan: error: {message}")
    return EXIT_ERROR


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


class _OutputClosed(Exception):
    """The reader of our output went away (``poisonscan ... | head``)."""


class _Interrupted(Exception):
    """Ctrl-C, raised past click, which would print an empty line before its Abort."""


def _silence_stdout() -> None:
    """Point stdout at the null device, so the flush at exit does not fail on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured, closed)
        pass


@contextmanager
def _closed_pipe_passes_click() -> Iterator[None]:
    """Re-raise EPIPE as :class:`_OutputClosed`, which click does not catch."""
    try:
        yield
    except OSError as e:
        if e.errno == errno.EPIPE:
            raise _OutputClosed() from e
        raise


class PoisonscanGroup(click.Group):
    """A group whose default command is ``scan``, and which owns the exit-code policy.

    The default-command rule: when the first argument is neither a subcommand name nor one of the
    group's own options (``--help``, ``-h``, ``--version``), all arguments go to ``scan``. So
    ``poisonscan data/`` means ``poisonscan scan data/``; a path that is named like a subcommand is
    scanned with an explicit ``poisonscan scan scan``.
    """

    default_command = "scan"
    own_options = ("--help", "-h", "--version")

    # click would turn a closed pipe into exit status 1, which here means "findings": both places
    # that write output (option callbacks such as --version while parsing, then the command)
    # raise past it, so that main() gives the pipe's own status.
    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        with _closed_pipe_passes_click():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        # (Ctrl-C too goes past click, which would print an empty line before its Abort.)
        try:
            with _closed_pipe_passes_click():
                return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted() from None

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
        except (click.Abort, _Interrupted):
            _exit_interrupted()
        except PoisonscanError as e:
            code = _fail(_one_line(str(e)))
        except _OutputClosed:  # the reader of our output went away (e.g. `| head`)
            _silence_stdout()
            code = EXIT_ERROR
        except OSError as e:
            if e.errno == errno.EPIPE:
                _silence_stdout()
                code = EXIT_ERROR
            else:
                where = f": {e.filename}" if e.filename else ""
                code = _fail(f"{e.strerror or e}{where}")
        except KeyboardInterrupt:
            _exit_interrupted()
        except MemoryError:
            code = _fail("out of memory; try a smaller --memory-budget or fewer --jobs")
        except Exception as e:  # a bug: never exit 1, which would read as "poisoning found"
            if os.environ.get("POISONSCAN_TRACEBACK"):
                traceback.print_exc()
            code = _fail(f"internal error: {type(e).__name__}: {_one_line(str(e))[:300]} (a bug in "
                         "poisonscan; set POISONSCAN_TRACEBACK=1 to print where it happened)")
        sys.exit(code)


def _exit_interrupted() -> NoReturn:
    """End the process after Ctrl-C, once the scan's own cleanup (its ``finally`` blocks) has
    run: one line, exit code 2, and no exit handlers. Those would wait on what Ctrl-C cut short
    (a Dask cluster closing mid-task printed dozens of lines of tracebacks from its exit
    handler) and have nothing left to save."""
    _fail("interrupted")
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(EXIT_ERROR)


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


def _config_options(func: Any) -> Any:
    """The options that make up a scan's configuration (shared by scan, baseline and config)."""
    options = [
        click.option(
            "--fail-on",
            type=click.Choice(FAIL_ON_CHOICES),
            help="Exit with code 1 when a finding has this severity or higher [default: high]. "
            "baseline and config only record or show it: they exit 0 whatever is found.",
        ),
        click.option(
            "--skip-bad-records/--no-skip-bad-records",
            default=None,
            help="Count and skip unreadable records instead of stopping with exit code 2 (--no-"
                 "skip-bad-records: stop, whatever a config file says).",
        ),
        click.option("--text-field", metavar="NAME",
                     help="Text column of plain-text records (default: text or content)."),
        click.option(
            "--id-field", metavar="NAME", help="Record id column (default: 'id' when present)."
        ),
        click.option(
            "--shape",
            type=click.Choice([s.value for s in Shape]),
            help="Record shape of every file (default: detected per file).",
        ),
        click.option(
            "-j", "--jobs", type=int, metavar="N", help="Worker processes (default: all cores)."
        ),
        click.option(
            "--memory-budget",
            metavar="SIZE",
            help="Memory for counting per worker, e.g. 512MB or 2GiB (default: 1GiB).",
        ),
        click.option(
            "--detectors",
            multiple=True,
            metavar="A,B",
            help="Detectors to run, comma-separated or repeated "
            f"(default: all of {', '.join(DETECTOR_IDS)}).",
        ),
        click.option(
            "--min-documents",
            type=int,
            metavar="N",
            help="How many documents make a pattern strong: a high trigger or campaign finding "
            "needs 2N, a medium trigger finding and a high sft-trigger finding N; weaker ones, "
            "from min(N, 3) documents, are reported with a lower severity (default: 5, at "
            "least 2).",
        ),
        click.option(
            "--seed", type=int, metavar="N", help="Seed of every hash family (default: 0)."
        ),
        click.option(
            "--config",
            "config_file",
            metavar="FILE",
            help="Read settings from FILE (poisonscan.toml or pyproject.toml) instead of "
            "discovering one from the working directory upwards.",
        ),
        click.option("--no-config", is_flag=True, help="Ignore config files."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


_CONFIG_KEYS = (
    "fail_on", "skip_bad_records", "text_field", "id_field", "shape", "jobs", "memory_budget",
    "detectors", "min_documents", "seed",
)


def _effective(paths: tuple[str, ...], params: dict[str, Any], quiet: bool = False,
               baseline: str | None = None) -> Effective:
    """The effective configuration: flags given, then the discovered config file, then defaults."""
    ctx = click.get_current_context()
    flags: dict[str, Any] = {}
    for key in _CONFIG_KEYS:
        if ctx.get_parameter_source(key) is ParameterSource.COMMANDLINE:
            flags[key] = params[key]
    if "detectors" in flags:
        flags["detectors"] = _split_detectors(flags["detectors"])
    if baseline is not None:
        flags["baseline"] = baseline
    effective = configfile.resolve(
        paths, flags, config_file=params.get("config_file"), use_files=not params.get("no_config")
    )
    if not quiet:
        for note in effective.notes:
            _err(f"poisonscan: note: {note}")
    return effective


def _run(config: ScanConfig, quiet: bool, hash_inputs: bool = True) -> ScanResult:
    """Scan, hashing the inputs in a thread beside the scan (see poisonscan.manifest)."""
    from poisonscan.engine.memory import prefer_small_pages
    from poisonscan.engine.scan import run_scan  # heavy imports only when scanning
    from poisonscan.report.json import SHA256_ARTIFACT

    prefer_small_pages()  # the scan runs in this process and its forks: see the function

    hasher = InputHasher(config.paths).start() if hash_inputs else None
    with make_progress(quiet) as progress:
        result = run_scan(config, progress=progress)
    if hasher is not None:
        result.artifacts[SHA256_ARTIFACT] = hasher.result()
    return result


_EXTRA_OUTPUTS = ("json", "sarif", "html")


@cli.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(list(WRITERS)),
    default="table",
    show_default=True,
    help="Report format: "
    + "; ".join(f"{w.name}: {w.description}" for w in WRITERS.values())
    + ".",
)
@click.option("-o", "--output", metavar="FILE",
              help="Write the report to FILE instead of stdout ('-': stdout).")
@click.option("--output-json", metavar="FILE", help="Also write the JSON report to FILE.")
@click.option("--output-sarif", metavar="FILE", help="Also write the SARIF report to FILE.")
@click.option("--output-html", metavar="FILE", help="Also write the HTML report to FILE.")
@click.option(
    "--suspects",
    metavar="FILE",
    help="Export one row per (suspect document, finding); the format follows the extension: "
    + ", ".join(SUSPECT_WRITERS)
    + ".",
)
@click.option(
    "--triggers",
    metavar="FILE",
    help="Export the suspected triggers with their variants and contexts as JSON "
    "(for red-teaming and guardrails).",
)
@click.option(
    "--clusters",
    metavar="FILE",
    help="Export every document's near-duplicate cluster (.jsonl, .csv or .parquet); needs the "
    "campaign detector.",
)
@click.option(
    "--baseline",
    metavar="FILE",
    help="Accepted findings (from 'poisonscan baseline create'): report and fail only on others.",
)
@click.option(
    "--include-documents",
    is_flag=True,
    help="List every suspect document of each finding in the JSON report (as 'locations'), "
    "for 'poisonscan clean --report'.",
)
@click.option(
    "--no-hash", is_flag=True, help="Do not compute the inputs' sha256 (for huge corpora)."
)
@click.option(
    "--executor",
    type=click.Choice(EXECUTOR_CHOICES),
    help="Where shard work runs: local processes (default) or a Dask cluster "
    "(pip install 'poisonscan[dask]').",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Dask scheduler address (default: $DASK_SCHEDULER_ADDRESS, else a local cluster of "
    "--jobs workers).",
)
@click.option(
    "--state",
    "state_dir",
    metavar="DIR",
    help="Keep per-shard results in DIR: a re-run resumes an interrupted scan and reads only "
    "new or changed shards.",
)
@_config_options
@click.option("-q", "--quiet", is_flag=True, help="No progress display and no notes on stderr.")
def scan(paths: tuple[str, ...], **params: Any) -> int:
    """Scan files, directories (recursive) and globs for poisoning triggers.

    Exit code 0: no finding at or above --fail-on; 1: at least one; 2: the scan could not run.
    """
    quiet = params["quiet"]
    if params["output"] == "-":  # the usual spelling of stdout
        params["output"] = None
    effective = _effective(paths, params, quiet, params["baseline"])
    config = effective.config
    if params["executor"] or params["scheduler"] or params["state_dir"]:
        executor = params["executor"] or config.executor
        config = dataclasses.replace(
            # (--executor local leaves out a config file's Dask scheduler)
            config, executor=executor,
            scheduler=params["scheduler"] or (config.scheduler if executor == "dask" else None),
            state_dir=params["state_dir"] or config.state_dir,
        )
    outputs = {"--output": params["output"], "--suspects": params["suspects"],
               "--triggers": params["triggers"], "--clusters": params["clusters"]}
    outputs.update({f"--output-{n}": params[f"output_{n}"] for n in _EXTRA_OUTPUTS})
    if params["suspects"] is not None:
        suspects_writer(params["suspects"])
    if params["clusters"] is not None:
        _check_clusters(params["clusters"], config)
    skipped: list[str] = []
    _check_outputs(outputs, paths, skipped)
    if not quiet:
        for path in sorted(set(skipped)):
            ext = unsupported_compression(path)
            if ext:
                _err(f"poisonscan: note: not reading {path}: poisonscan does not read "
                     f"{ext} files (decompress it, or recompress it as .gz or .zst)")
            else:
                _err(f"poisonscan: note: leaving out {path}: it is a poisonscan output "
                     "(report, manifest, triggers, SARIF, suspects, clusters or removal list), "
                     "not data")
    accepted = baseline_mod.load(effective.baseline) if effective.baseline else None

    result = _run(config, quiet, hash_inputs=not params["no_hash"])
    if accepted is not None:
        outcome = baseline_mod.apply(result, accepted)
        if not quiet:
            _err(f"poisonscan: {baseline_mod.describe(outcome)}")
    if params["include_documents"]:
        result.artifacts[DOCUMENTS_ARTIFACT] = True
    write_report(result, params["fmt"], params["output"])
    for name in _EXTRA_OUTPUTS:
        if params[f"output_{name}"] is not None:
            write_report(result, name, params[f"output_{name}"])
    if params["suspects"] is not None:
        write_suspects(result.findings, params["suspects"])
    if params["triggers"] is not None:
        write_triggers(result, params["triggers"])
    if params["clusters"] is not None:
        _export_clusters(result, params["clusters"])
    if not quiet and result.artifacts.get("state") is not None:
        _err(f"poisonscan: {result.artifacts['state']}")
    if not quiet:
        labels = {"--output": "report", "--suspects": "suspects", "--triggers": "triggers",
                  "--clusters": "clusters"}
        for option, path in outputs.items():
            if path is not None:
                label = labels.get(option, option.removeprefix("--output-") + " report")
                _err(f"poisonscan: wrote {label} to {path}")
    return exit_code(result)


def _check_outputs(outputs: dict[str, str | None], paths: Sequence[str],
                   skipped: list[str]) -> None:
    """Fail before scanning when an output could not be written, names the file of another
    output, or would overwrite one of the scan's input files. The local inputs' discovery also
    appends to ``skipped`` the files it leaves out as poisonscan's outputs."""
    seen: dict[str, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        if path == "-":  # (a file named "-" in the working directory was written instead)
            raise ConfigError(f"{option}: '-' (stdout) is for the report only (scan -o -); name "
                              "a file, ./- for one called '-'")
        _check_output_dir(option, path)
        key = os.path.realpath(path)
        if key in seen:
            raise ConfigError(f"{option}: {path!r} is also the file of {seen[key]}; give each "
                              "output a file of its own")
        seen[key] = option
    local = [p for p in paths if not is_remote(p)]
    if not local:
        return
    try:
        inputs = {os.path.realpath(f.path) for f in discover_inputs(local, skipped)}
    except PoisonscanError:
        return  # the scan reports it
    for key, option in seen.items():
        if key in inputs:
            raise ConfigError(f"{option}: {outputs[option]!r} is one of the scan's input files; "
                              "writing there would destroy it")


def _check_clusters(path: str, config: ScanConfig) -> None:
    if "campaign" not in config.detectors:
        raise ConfigError(
            "--clusters: near-duplicate clusters come from the campaign detector, which is not "
            f"enabled (detectors: {', '.join(config.detectors) or 'none'}); add it with "
            "--detectors ...,campaign"
        )
    if not path.lower().endswith((".jsonl", ".json", ".csv", ".parquet")):
        raise ConfigError(f"--clusters: cannot tell the format of {path!r}; use .jsonl, .csv or "
                          ".parquet")


def _export_clusters(result: ScanResult, path: str) -> None:
    from poisonscan.stats.lsh import export_clusters

    assignment = result.artifacts.get("clusters")
    if assignment is None:
        raise ConfigError("--clusters: the scan produced no cluster assignment (no text records?)")
    export_clusters(assignment, path)


# --------------------------------------------------------------------------- baseline


@cli.group()
def baseline() -> None:
    """Create or update a baseline: the findings you reviewed and accept.

    `poisonscan scan --baseline FILE` then reports and fails only on findings not in FILE.
    """


@baseline.command("create")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("-o", "--output", required=True, metavar="FILE", help="The baseline file to write.")
@_config_options
@click.option("-q", "--quiet", is_flag=True, help="No progress display and no notes on stderr.")
def baseline_create(paths: tuple[str, ...], **params: Any) -> int:
    """Scan PATH... and accept every finding into a new baseline file."""
    _check_outputs({"--output": params["output"]}, paths, [])
    effective = _effective(paths, params, params["quiet"])
    result = _run(effective.config, params["quiet"], hash_inputs=False)
    baseline_mod.write(params["output"], baseline_mod.create(result))
    if not params["quiet"]:
        n = len(result.findings)
        _err(f"poisonscan: wrote baseline of {n} finding{'s' if n != 1 else ''} to "
             f"{params['output']}")
    return EXIT_CLEAN


@baseline.command("update")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("-o", "--output", required=True, metavar="FILE", help="The baseline file to update.")
@click.option("--keep-missing", is_flag=True,
              help="Keep entries whose finding no longer occurs (default: drop them).")
@_config_options
@click.option("-q", "--quiet", is_flag=True, help="No progress display and no notes on stderr.")
def baseline_update(paths: tuple[str, ...], **params: Any) -> int:
    """Scan PATH... again and refresh the baseline: add new findings, drop vanished ones.

    Extra keys of kept entries (a reviewer's "note") are preserved.
    """
    _check_outputs({"--output": params["output"]}, paths, [])
    old = baseline_mod.load(params["output"], "--output")
    effective = _effective(paths, params, params["quiet"])
    result = _run(effective.config, params["quiet"], hash_inputs=False)
    doc, summary = baseline_mod.update(old, result, keep_missing=params["keep_missing"])
    baseline_mod.write(params["output"], doc)
    if not params["quiet"]:
        _err(f"poisonscan: updated {params['output']}: {summary.added} added, "
             f"{summary.kept} kept, {summary.removed} removed")
    return EXIT_CLEAN


# --------------------------------------------------------------------------- config


@cli.command("config")
@click.argument("paths", nargs=-1, metavar="[PATH...]")
@click.option("-f", "--format", "fmt", type=click.Choice(["toml", "json"]), default="toml",
              show_default=True, help="Output format.")
@click.option("--baseline", metavar="FILE", help="Baseline file, as scan takes it.")
@_config_options
def config_command(paths: tuple[str, ...], fmt: str, **params: Any) -> int:
    """Print the effective configuration: defaults, the config file found, and the flags given.

    Config files are poisonscan.toml or [tool.poisonscan] in pyproject.toml, found from the
    working directory upwards; one inside a scanned directory PATH is ignored.
    """
    effective = _effective(paths, params, baseline=params["baseline"])
    render = configfile.to_json if fmt == "json" else configfile.to_toml
    click.echo(render(effective, __version__), nl=False)
    return EXIT_CLEAN


# --------------------------------------------------------------------------- clean


def _plural(n: int, word: str) -> str:
    return word if n == 1 else f"{word}s"


def _is(n: int) -> str:
    """The verb for ``n`` things: "is" or "are"."""
    return "is" if n == 1 else "are"


def _first_three(paths: list[str]) -> str:
    """Up to three paths, and how many more there are."""
    more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
    return ", ".join(paths[:3]) + more


@cli.command("clean")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--report", metavar="FILE",
              help="JSON report of 'poisonscan scan -f json --include-documents'.")
@click.option("--suspects", metavar="FILE",
              help="A suspects export of 'poisonscan scan --suspects FILE' (instead of --report).")
@click.option("--out", "out", required=True, metavar="DIR",
              help="Directory for the cleaned copy (new or empty, outside the inputs).")
@click.option("--redact", is_flag=True,
              help="Cut the trigger out of suspect records instead of removing the records.")
@click.option("--min-severity", type=click.Choice(["high", "medium", "low"]), default="medium",
              show_default=True, help="Act on findings of this severity or higher.")
@click.option("--finding", "finding_ids", multiple=True, metavar="ID",
              help="Act only on these finding ids (repeatable).")
@click.option("--removal-list", metavar="FILE",
              help="Where to write the removal list (default: DIR.removed.jsonl beside DIR).")
@click.option("--text-field", metavar="NAME", help="Text column of plain-text records.")
@click.option("--id-field", metavar="NAME", help="Record id column.")
@click.option("--shape", type=click.Choice([s.value for s in Shape]),
              help="Record shape of every file.")
@click.option("-q", "--quiet", is_flag=True, help="No summary on stderr.")
def clean_command(inputs: tuple[str, ...], **params: Any) -> int:
    """Write a copy of INPUT... without the suspect documents (or with --redact, without triggers).

    Same relative paths, formats and compression as the inputs; the inputs are never modified.
    """
    from poisonscan import clean as clean_mod
    from poisonscan.findings import Severity
    from poisonscan.io.options import ReadOptions

    if (params["report"] is None) == (params["suspects"] is None):
        raise click.UsageError("give exactly one of --report FILE and --suspects FILE")
    minimum = Severity(params["min_severity"])
    only = set(params["finding_ids"]) or None
    hashes: dict[str, str] = {}
    sizes: dict[str, int] = {}
    scan_config: dict[str, Any] = {}
    if params["report"] is not None:
        suspects, hashes, sizes, scan_config = clean_mod.suspects_from_report(
            params["report"], minimum, only)
    else:
        suspects = clean_mod.suspects_from_export(params["suspects"], minimum, only)
    shape = params["shape"] or scan_config.get("shape")
    options = ReadOptions(
        shape=Shape(shape) if shape else None,
        text_field=params["text_field"] or scan_config.get("text_field"),
        id_field=params["id_field"] or scan_config.get("id_field"),
        skip_bad_records=bool(scan_config.get("skip_bad_records", False)),
    )
    summary = clean_mod.clean(inputs, suspects, params["out"], redact=params["redact"],
                              removal_list=params["removal_list"], hashes=hashes, sizes=sizes,
                              options=options)
    if not params["quiet"]:
        _err(f"poisonscan: {summary.line()}")
        if summary.not_copied:
            n = len(summary.not_copied)
            _err(f"poisonscan: note: {n} {_plural(n, 'file')} under the input directories "
                 f"{_is(n)} not data poisonscan reads and {_is(n)} not in the copy: "
                 f"{_first_three(summary.not_copied)}")
        if summary.unmatched:
            n = summary.unmatched
            _err(f"poisonscan: note: {n} suspect {_plural(n, 'document')} "
                 f"{_is(n)} in files that are not among the inputs")
        if summary.unhashed:
            n = len(summary.unhashed)
            why = ("the report records none, as after a scan with --no-hash"
                   if params["report"] is not None else "a suspects export records none")
            them, their = ("them", "their") if n != 1 else ("it", "its")
            size = f"{their} {_plural(n, 'size')} and " \
                if summary.unsized == 0 and params["report"] is not None else ""
            _err(f"poisonscan: note: {n} {_plural(n, 'file')} with suspects had no sha256 to check "
                 f"{them} against ({why}): {_first_three(summary.unhashed)}; "
                 f"{'they were' if n != 1 else 'it was'} checked only by {size}"
                 f"{their} suspect rows' record ids")
    return EXIT_CLEAN


# --------------------------------------------------------------------------- provenance


@cli.command("manifest")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("-o", "--output", required=True, metavar="FILE", help="The manifest to write.")
@click.option("-q", "--quiet", is_flag=True, help="No summary on stderr.")
def manifest_command(paths: tuple[str, ...], output: str, quiet: bool) -> int:
    """Record sha256, size and record count of every input file, with the tool version."""
    _check_output_dir("--output", output)
    doc = manifest_mod.build(paths, output, __version__)
    manifest_mod.write(doc, output)
    if not quiet:
        n_files = len(doc["files"])
        _err(f"poisonscan: wrote manifest of {n_files} file{'s' if n_files != 1 else ''} "
             f"to {output}")
    return EXIT_CLEAN


@cli.command("verify")
@click.argument("manifest", metavar="MANIFEST")
def verify_command(manifest: str) -> int:
    """Check the files of MANIFEST: exit 1 when any changed, is missing or is extra."""
    outcome = manifest_mod.verify(manifest)
    for line in outcome.lines():
        click.echo(safe_message(line))
    return EXIT_CLEAN if outcome.ok else EXIT_FINDINGS


# Collector settings of the command (the library leaves the process's alone). Loading numba and
# the cached kernels makes some 130,000 long-lived objects: CPython's default first threshold
# (700 allocations) has the collector walk the young ones hundreds of times while they load,
# and the interpreter's last collection at exit walks them all once more. On a cached scan of
# 1 MB those cost about a quarter of the run (measured on 2026-12-02: 2.5-2.7 s with the
# defaults, 2.0-2.2 s with this threshold and the freeze at exit).
GC_THRESHOLD = (10_000, 50, 100)


def main() -> None:
    """Console-script entry point."""
    gc.set_threshold(*GC_THRESHOLD)
    try:
        cli()
    finally:
        # Every object still alive lives until the process ends: frozen, the collection at exit
        # skips them (the process's memory goes back to the system whole anyway).
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()

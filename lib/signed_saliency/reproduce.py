"""The batch runner's front end: ``make reproduce`` runs the Snakemake workflow of the chain.

``python -m signed_saliency.reproduce --profile quick [--only cifar10/cnn ...] [--seeds 42,43]
[--jobs 2]`` (or ``make reproduce PROFILE=quick ONLY=cifar10/cnn SEEDS=42,43 JOBS=2``) runs
``workflow/Snakefile`` with Snakemake: for each model × dataset column and training seed, it trains
the checkpoint and executes ``notebooks/01_train`` … ``04_appendix`` (the paper),
``06_sanity_checks``, ``07_beyond_deletion`` and ``08_metric_controls`` (beyond it) with papermill
(``--notebooks`` runs some of them), writing executed notebooks to ``build/<profile>/<column>/``
and figures, result records and tables to ``figures/<profile>/`` (another seed than the profile's
42: ``seed<N>/`` below both). ``--jobs N`` runs N jobs at once, each with its share of the CPU
threads. Snakemake reruns only what changed: a second run with nothing changed runs no job, and a
checkpoint or a cached curve is reused even when its notebook reruns. Each executed notebook is
written to a temporary file and renamed only when it succeeded; a failure stops the run, naming the
notebook and the cell, and keeps the failed notebook as ``*.failed.ipynb``. Pre-trained columns
whose ImageNet weights cannot be loaded are skipped with a message. ``--archives DIR`` first fills
the data root from the offline archives (``DIR/materialize.py``), so that one command takes a fresh
clone on any machine to executed notebooks, figures and tables. Each finished column leaves
``results/run_<column>.json``: its wall time per notebook, the device, and the versions of torch
and of this library (with the git commit when there is one).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from signed_saliency import paths
from signed_saliency.data import missing_data
from signed_saliency.numerics import DEFAULT_MODE, MODES, check_mode
from signed_saliency.profiles import PROFILES, get_profile
from signed_saliency.workflow import (
    DOWNLOAD_ENV,
    INVOCATION_ENV,
    NOTEBOOKS,
    SNAKEFILE,
    Plan,
    invocation,
    plan,
    tables_job,
)


@dataclass
class RunReport:
    profile: str
    figures_dir: Path
    build_dir: Path
    ran: list[str] = field(default_factory=list)  # the runs (column, seed) of this invocation
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0  # the whole workflow's wall time
    outputs: list[Path] = field(default_factory=list)
    jobs: dict[str, int] = field(default_factory=dict)  # a dry run's jobs: {rule: count}


def announcement(chosen: Plan, jobs: int, numerics: str) -> list[str]:
    """What a run is about to do, before it does it: the runs, how long the committed records say it takes,
    and which folders it writes over."""
    from signed_saliency.records import last_full_run, load

    columns = get_profile(chosen.profile).columns
    found = load(columns, chosen.figures)
    recorded, runs = found.wall_time, [found.own[c.id]["run"] for c in columns]
    if recorded:  # an ONLY=... rerun is no estimate of the whole profile: the last full run is, where there is one
        recorded = last_full_run(recorded, columns) or recorded
    if recorded and recorded["runs"]:  # an invocation that found everything up to date says nothing of the time
        estimate = (f"the last recorded run of this profile took {recorded['wall_seconds'] / 60:.1f} min with "
                    f"JOBS={recorded['jobs_at_once']} for {', '.join(recorded['runs'])}")  # fmt: skip
    elif any(runs):
        total = sum(run["wall_seconds"] for run in runs if run)
        estimate = (f"no wall time recorded; its columns' recorded job times, on the machines that ran them, add "
                    f"up to {total / 60:.1f} min")  # fmt: skip
    else:
        estimate = "no recorded run of this profile to estimate it from"
    return [
        f"{chosen.profile}: {', '.join(r.label for r in chosen.runs)}; {jobs} job{'s' * (jobs != 1)} at once, "
        f"numerics {numerics}",
        f"wall time: {estimate}; a rerun redoes only what changed (--dry-run lists it)",
        f"writes {chosen.figures}/ (figures, tables, README), replacing what is there, and {chosen.build}/",
    ]


def threads_per_job(jobs: int, cores: int | None = None) -> int:
    """The CPU threads each of ``jobs`` parallel jobs gets, so that together they use the cores once."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive int, got {jobs!r}")
    return max(1, (cores or os.cpu_count() or 1) // jobs)


def snakemake_command(chosen: Plan, *, jobs: int = 1, device: str = "auto", dry_run: bool = False,
                      extra: list[str] | None = None, numerics: str = DEFAULT_MODE) -> list[str]:  # fmt: skip
    """The ``snakemake`` command line that runs the workflow for the runs of ``chosen`` (``extra`` appended)."""
    threads = threads_per_job(jobs)
    # A training gets every core whatever JOBS is: its gradients depend on the thread count (a checkpoint
    # trained on 1 thread is not the one trained on 2), and two trainings side by side on 1 thread each
    # measured only 1.09x the speed of one on 2 threads (CNN at 224 px: 2 x 27.6 against 50.8 img/s).
    config = {"profile": chosen.profile, "only": ",".join(dict.fromkeys(r.column.label for r in chosen.runs)),
              "seeds": ",".join(dict.fromkeys(str(r.seed) for r in chosen.runs)),
              "notebooks": ",".join(chosen.notebooks), "device": device, "threads": threads,
              "train_threads": threads * jobs,
              "figures_dir": chosen.figures, "build_dir": chosen.build,
              "notebooks_dir": chosen.notebooks_dir, "numerics": numerics}  # fmt: skip
    return [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(chosen.build),
            "--cores", str(threads * jobs), "--config", *[f"{k}={v}" for k, v in config.items()],
            *(["--dry-run"] if dry_run else []), *(extra or [])]  # fmt: skip


def run(
    profile: str,
    only: list[str] | None = None,
    *,
    seeds=None,
    jobs: int = 1,
    figures_dir: str | Path | None = None,
    build_dir: str | Path | None = None,
    notebooks_dir: str | Path | None = None,
    device: str = "auto",
    notebooks: list[str] | None = None,
    dry_run: bool = False,
    numerics: str = DEFAULT_MODE,
    verbose: bool = False,
    download: bool = False,
) -> RunReport:
    """Run the workflow for ``profile`` (optionally some columns, seeds and notebooks) with Snakemake, its jobs
    under ``numerics`` (see ``signed_saliency.numerics``); a dry run only lists the jobs that would run
    (``RunReport.jobs``)."""
    check_mode(numerics)
    chosen = plan(profile, only, seeds, notebooks, figures_dir=figures_dir, build_dir=build_dir,
                  notebooks_dir=notebooks_dir)  # fmt: skip
    report = RunReport(profile, chosen.figures, chosen.build, [r.label for r in chosen.runs], chosen.skipped)
    for label, reason in chosen.skipped.items():
        print(f"skipping {label}: {reason}", file=sys.stderr)
    if not chosen.runs:
        raise ValueError(f"nothing to run: every column of {profile} that was asked for is skipped")
    if not dry_run:
        # Refused here, in one line, rather than as a traceback inside every notebook job.
        missing = None if download else missing_data([r.column.dataset for r in chosen.runs])
        if missing:
            raise ValueError(missing)
        print("\n".join(announcement(chosen, jobs, numerics)), flush=True)
    chosen.build.mkdir(parents=True, exist_ok=True)
    command = snakemake_command(chosen, jobs=jobs, device=device, dry_run=dry_run, numerics=numerics,
                                extra=["--quiet", "rules"] if dry_run else None)  # fmt: skip
    # The final job, which runs only where other jobs ran, times this invocation and reports it in the README.
    environment = {**os.environ, INVOCATION_ENV: json.dumps(invocation(chosen, jobs))}
    started = time.perf_counter()
    if dry_run:
        done = subprocess.run(command, capture_output=True, text=True, env=environment)
        returncode, log = done.returncode, done.stdout + done.stderr
    else:
        returncode, log = _run_logged(command, environment, chosen.build / LOG_NAME, verbose), ""
    report.seconds = time.perf_counter() - started
    if returncode != 0:
        where = "" if dry_run else f"; the whole output is in {chosen.build / LOG_NAME}"
        raise WorkflowFailed(f"the workflow stopped (snakemake exit status {returncode}): the failing job's "
                             f"message is above{where}" + (f"\n{log[-3000:]}" if dry_run else ""))  # fmt: skip
    report.jobs = dry_run_jobs(log) if dry_run else {}
    report.outputs = [] if dry_run else [chosen.summary]
    return report


LOG_NAME = "reproduce.log"  # in build/<profile>/: Snakemake's whole output of the last run
# Shown as they come: the jobs' own labelled lines, skipped columns, errors, and Snakemake's "nothing to do".
_OURS = re.compile(r"^\[[^\]]* seed \d+ · |^skipping |^error: |^Nothing to be done")
_STARTED = re.compile(r"^(?:local)?rule (\S+):$")
_FINISHED = re.compile(r"^Finished jobid: \d+ \(Rule: (\S+)\)$")
_STEPS = re.compile(r"^(\d+) of (\d+) steps \(\d+%\) done$")
_TROUBLE = re.compile(r"Error|Exception|Traceback|error:|MissingInput|IncompleteFiles")


def _run_logged(command: list[str], environment: dict, log_path: Path, verbose: bool) -> int:
    """Run Snakemake with its whole output in ``log_path``; print it all when ``verbose``, else one line per job
    started and finished, the jobs' own progress lines, and anything that reports an error. Its exit status."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    finished, in_error = None, False
    # Line-buffered: a front end killed mid-run still leaves every line Snakemake printed.
    log = open(log_path, "w", buffering=1)  # noqa: SIM115 - closed with the process below
    with log, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment,
                               bufsize=1) as process:  # fmt: skip
        for line in process.stdout:
            log.write(line)
            text = line.rstrip("\n")
            in_error = (in_error and text != "") or text.startswith("Error in rule")
            shown = None
            if verbose or _OURS.search(text) or in_error or _TROUBLE.search(text):
                shown = text
            elif started := _STARTED.match(text):
                shown = f"started {started.group(1)}"
            elif done := _FINISHED.match(text):
                finished = done.group(1)
            elif (steps := _STEPS.match(text)) and finished:
                shown, finished = f"finished {finished} ({steps.group(1)} of {steps.group(2)} jobs)", None
            if shown is not None:
                print(shown, flush=True)
    return process.returncode


def dry_run_jobs(log: str) -> dict[str, int]:
    """The jobs a dry run would run, from Snakemake's "Job stats" table: {rule: count} ({} for nothing to do)."""
    if "Job stats:" not in log:
        return {}
    jobs = {}
    for line in log.split("Job stats:", 1)[1].splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs


class WorkflowFailed(RuntimeError):
    """A job of the workflow failed; Snakemake has printed which and why."""


def materialize(archives: str | Path, datasets: list[str], data_root: str | Path | None = None) -> None:
    """Fill the data root from the offline archives with their own ``materialize.py`` (a rerun skips what is done)."""
    script = Path(archives) / "materialize.py"
    if not script.exists():
        raise ValueError(f"no materialize.py in {archives}: pass the folder of the offline archives and MANIFEST.json")
    for dataset in datasets:
        command = [sys.executable, str(script), str(paths.data_root(data_root)), "--only", dataset,
                   "--archives", str(archives)]  # fmt: skip
        if subprocess.run(command).returncode != 0:
            raise ValueError(f"materializing {dataset} from {archives} failed: see the message above")


def choose_profile(requested: str, device: str = "auto") -> tuple[str, str]:
    """The profile to run and why: ``"auto"`` is ``paper`` where CUDA is available, else ``quick``."""
    if requested != "auto":
        return requested, "as requested"
    if str(device) == "cpu":
        return "quick", "--device cpu was given, and the paper profile needs a GPU to finish in hours, not days"
    if torch.cuda.is_available():
        return "paper", f"CUDA is available ({torch.cuda.get_device_name(0)}): the exact protocol"
    return "quick", ("no CUDA device (torch.cuda.is_available() is False), and the paper profile needs a GPU to "
                     "finish in hours, not days; PROFILE=paper forces it")  # fmt: skip


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the notebook chain for a profile: the Snakemake workflow.")
    parser.add_argument("--profile", default="auto", choices=["auto", *sorted(PROFILES)],
                        help="auto (default): paper where CUDA is available, quick otherwise")  # fmt: skip
    parser.add_argument("--only", nargs="*", default=None, help="columns to run, e.g. cifar10/cnn imagenette/cnn")
    parser.add_argument("--seeds", default=None, help="training seeds, e.g. 42,43,44 (default: the profile's 42)")
    parser.add_argument("--jobs", type=_positive, default=min(2, os.cpu_count() or 1),
                        help="jobs at once (default 2, or 1 on one core): each notebook job gets its share of the "
                             "CPU threads, a training all of them")  # fmt: skip
    parser.add_argument("--notebooks", nargs="*", default=None, help=f"some of {', '.join(NOTEBOOKS)} (default all)")
    parser.add_argument("--figures-dir", default=None, help="default figures/<profile>/")
    parser.add_argument("--build-dir", default=None, help="default build/<profile>/")
    parser.add_argument("--notebooks-dir", default=None, help="the source notebooks (default notebooks/)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available, else CPU), cpu, cuda")
    parser.add_argument("--data-root", default=None, help=f"default ${paths.DATA_ENV} or data/")
    parser.add_argument("--dry-run", action="store_true", help="list the jobs that would run, and run none")
    parser.add_argument(
        "--download",
        action="store_true",
        help="let torchvision fetch what is missing here: datasets, ImageNet weights (online only)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="print Snakemake's whole output (by default it goes to build/<profile>/reproduce.log)",
    )
    parser.add_argument("--numerics", default=os.environ.get("NUMERICS") or DEFAULT_MODE, choices=MODES,
                        help="reproducible (default; $NUMERICS): kernels pinned to AVX2, the same bits on any "
                             "x86-64 machine; fast: the libraries choose")  # fmt: skip
    parser.add_argument(
        "--archives",
        default=None,
        help="first fill the data root from the offline archives in this folder (with its materialize.py)",
    )
    parser.add_argument(
        "--tables-only",
        action="store_true",
        help="only reassemble the tables and README from the result records already written",
    )
    args = parser.parse_args(argv)
    if not SNAKEFILE.exists() and not args.tables_only:
        print(f"error: the workflow ({SNAKEFILE}) is not here: an installed package holds the library, not the "
              "chain. Clone the repository and run `make reproduce` there", file=sys.stderr)  # fmt: skip
        return 1
    if args.profile == "auto":
        args.profile, why = choose_profile("auto", args.device)
        print(f"profile auto → {args.profile}: {why}", flush=True)
    if args.tables_only:
        for path in tables_job(args.profile, args.figures_dir):
            print(path)
        return 0
    if args.download:  # the Snakefile's plan and every job read it, to fetch missing weights
        os.environ[DOWNLOAD_ENV] = "1"
    if args.data_root:
        # The jobs and their notebooks' kernels inherit the environment, so they read the same data root.
        os.environ[paths.DATA_ENV] = str(Path(args.data_root).resolve())
    try:
        if args.archives:
            datasets = sorted({column.dataset for column in get_profile(args.profile).select(args.only)})
            materialize(args.archives, datasets)
        report = run(args.profile, args.only, seeds=args.seeds, jobs=args.jobs, figures_dir=args.figures_dir,
                     build_dir=args.build_dir, notebooks_dir=args.notebooks_dir, device=args.device,
                     notebooks=args.notebooks, dry_run=args.dry_run, numerics=args.numerics,
                     verbose=args.verbose, download=args.download)  # fmt: skip
    except (WorkflowFailed, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.dry_run:
        jobs = ", ".join(f"{rule} ×{n}" if n > 1 else rule for rule, n in report.jobs.items())
        print(f"would run: {jobs}" if jobs else "nothing to do: every output is up to date")
        return 0
    print(f"profile {args.profile}: {', '.join(report.ran)} up to date after {report.seconds / 60:.1f} min")
    for label, reason in report.skipped.items():
        print(f"skipped {label}: {reason.splitlines()[0][:200]}")
    print(f"figures and tables: {report.figures_dir}; executed notebooks: {report.build_dir}")
    print("\n".join(findings(args.profile, report.figures_dir)))
    return 0


def findings(profile: str, figures_dir: Path) -> list[str]:
    """What the run found, column by column: the paper's four claims, read back from the records."""
    from signed_saliency.records import load
    from signed_saliency.verdicts import claim_lines

    columns = get_profile(profile).columns
    found = load(columns, figures_dir).own
    lines = []
    for column in columns:
        deletion, controls = found[column.id]["deletion_test"], found[column.id]["controls"]
        if deletion or controls:
            lines += [f"{column.label}:", *(f"  {line}" for line in claim_lines(deletion, controls))]
    if lines:
        lines.append(f"the figures, every number and its interval: {figures_dir / 'README.md'}")
    return lines


if __name__ == "__main__":
    sys.exit(main())

"""The Snakemake workflow's library side: which jobs a run has, where their files go, what each job does.

``workflow/Snakefile`` only wires files: it asks ``plan`` for the runs (one per column × training
seed) of a profile and declares, for each, a rule that trains its checkpoint, one rule per
notebook of the chain (inputs: the checkpoint and the source notebook; outputs: the executed
notebook, its timing and the notebook's result record), one that writes the run record
``results/run_<column>.json``, and a final rule for the tables and the generated README. Each
job runs ``python -m signed_saliency.workflow train|notebook|record|tables ...``. A run of the
profile's own seed (42) writes to ``figures/<profile>/`` and ``build/<profile>/`` as it always
has; another seed writes to ``seed<N>/`` below them, and the tables gather every seed they find. The
final job also records the wall time of the front end's invocation (``reproduce``), so that the README
it writes reports it.
A notebook job runs papermill with a kernel over IPC sockets (a kernel over TCP without
encryption warns on every start), with ``threads`` CPU threads, and prints the notebook's
progress bars to the terminal as whole lines labelled with the job (``progress.follow``).
Importing this module is cheap (no torch), so a job that only runs a notebook starts quickly.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from signed_saliency import __version__, numerics, paths, records
from signed_saliency.io import atomic_path, atomic_write_text
from signed_saliency.progress import follow
from signed_saliency.records import seed_folder

NOTEBOOKS = (
    "01_train",
    "02_qualitative",
    "03_quantitative",
    "04_appendix",
    "06_sanity_checks",
    "07_beyond_deletion",
    "08_metric_controls",
)
# The result record (results/<kind>_<column>.json) each notebook writes; 02 writes figures only.
RECORDS = {
    "01_train": "train",
    "03_quantitative": "deletion_test",
    "04_appendix": "deletion_train",
    "06_sanity_checks": "sanity",
    "07_beyond_deletion": "beyond",
    "08_metric_controls": "controls",
}
# Scheduling order when jobs run side by side (higher first): the notebooks longest first (their measured
# order on the quick profile), so that the job left running alone on one core at the end is a short one, and
# a training above any one notebook. Snakemake maximises the summed priority of the jobs it starts, so two
# one-core notebooks (6 + 5) may still go before a two-core training (10): either way no core idles.
PRIORITY = {"train": 10, "08_metric_controls": 6, "06_sanity_checks": 5, "07_beyond_deletion": 4,
            "04_appendix": 3, "03_quantitative": 2, "02_qualitative": 1, "01_train": 0}  # fmt: skip
SNAKEFILE = paths.REPO_ROOT / "workflow" / "Snakefile"
# The front end's invocation (``invocation``) as JSON, for the final job to time it: Snakemake passes the
# environment to its jobs without counting it as a change, as it would a config value or a parameter.
INVOCATION_ENV = "SIGNED_SALIENCY_INVOCATION"
DOWNLOAD_ENV = "SIGNED_SALIENCY_DOWNLOAD"  # "1": missing data and weights may be downloaded


class NotebookFailed(RuntimeError):
    """A notebook of the chain raised; the message names it and the failing cell."""


@dataclass(frozen=True)
class Run:
    """One column of a profile trained with one seed, and where its files go."""

    profile: str
    column: object  # profiles.Column (not imported here: it pulls in torch)
    seed: int
    figures: Path
    build: Path

    @property
    def id(self) -> str:
        return f"{self.column.id}_s{self.seed}"

    @property
    def label(self) -> str:
        return f"{self.column.label} seed {self.seed}"

    @property
    def checkpoint(self) -> Path:
        from signed_saliency.training import checkpoint_path

        return checkpoint_path(self.column.train_config(self.seed))

    def executed(self, notebook: str) -> Path:
        return self.build / self.column.id / f"{notebook}.ipynb"

    def timing(self, job: str) -> Path:
        """Where a job (a notebook, or ``"train"``) writes its wall time."""
        return self.build / self.column.id / f"{job}.timing.json"

    def record(self, kind: str) -> Path:
        return paths.results_dir(self.figures) / f"{kind}_{self.column.id}.json"

    def parameters(self, device: str = "auto") -> dict:
        return {**self.column.parameters(), "profile": self.profile, "seed": self.seed, "device": device,
                "figures_dir": str(self.figures), "cache_dir": str(self.build / "cache")}  # fmt: skip


@dataclass
class Plan:
    """The runs of one invocation, the notebooks each runs, and the columns skipped (with why)."""

    profile: str
    runs: list[Run]
    notebooks: list[str]
    figures: Path  # the profile's folders: the runs of other seeds go to seed<N>/ below them
    build: Path
    notebooks_dir: Path
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def summary(self) -> Path:
        """The generated README: the workflow's final output."""
        return self.figures / "README.md"

    def source(self, notebook: str) -> Path:
        return self.notebooks_dir / f"{notebook}.ipynb"


def parse_list(value) -> list[str]:
    """A config value as a list: ``None`` or ``""`` → [], ``"a,b"`` → ["a", "b"], a list stays a list."""
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def parse_seeds(value) -> list[int]:
    """``"42,43"`` (or 42, or [42, 43]) as distinct non-negative ints, or a ValueError saying what is wrong."""
    seeds = []
    for part in parse_list(value):
        try:
            seed = int(part)
        except ValueError:
            raise ValueError(f"seeds must be integers separated by commas, like 42,43,44; got {value!r}") from None
        if seed < 0:
            raise ValueError(f"seeds must be non-negative, got {seed}")
        if seed in seeds:
            raise ValueError(f"seed {seed} is listed twice in {value!r}")
        seeds.append(seed)
    return seeds


def plan(
    profile: str,
    only=None,
    seeds=None,
    notebooks=None,
    *,
    figures_dir: str | Path | None = None,
    build_dir: str | Path | None = None,
    notebooks_dir: str | Path | None = None,
) -> Plan:
    """The runs of ``profile`` for the columns in ``only`` (all when empty) and each of ``seeds`` (the
    profile's own when empty), executing ``notebooks`` (the profile's own, or the whole chain, when empty)."""
    from signed_saliency.profiles import get_profile

    chosen = get_profile(profile)
    notebooks = parse_list(notebooks) or list(chosen.notebooks) or list(NOTEBOOKS)
    unknown = [n for n in notebooks if n not in NOTEBOOKS]
    if unknown:
        raise ValueError(f"unknown notebooks {unknown}: the chain has {list(NOTEBOOKS)}")
    seeds = parse_seeds(seeds) or [chosen.seed]
    figures = Path(figures_dir).resolve() if figures_dir else paths.FIGURES_DIR / profile
    build = Path(build_dir).resolve() if build_dir else paths.BUILD_DIR / profile
    sources = Path(notebooks_dir).resolve() if notebooks_dir else paths.NOTEBOOKS_DIR
    result = Plan(profile, [], notebooks, figures, build, sources)
    for column in chosen.select(parse_list(only) or None):
        reason = why_not_runnable(column)
        if reason:
            result.skipped[column.label] = reason
            continue
        for seed in seeds:
            result.runs.append(Run(profile, column, seed, seed_folder(figures, seed, chosen.seed),
                                   seed_folder(build, seed, chosen.seed)))  # fmt: skip
    return result


def why_not_runnable(column) -> str | None:
    """Why a column cannot run here (its ImageNet weights cannot be loaded), or None. Weights missing from the
    torch hub cache are downloaded only where ``$SIGNED_SALIENCY_DOWNLOAD`` is 1 (``reproduce --download``): an
    offline machine gets the reason at once, not a download attempt on every invocation."""
    if not column.pretrained:
        return None
    from signed_saliency.models import MissingWeightsError, build, cached_weights

    path, url = cached_weights(column.model)
    if os.environ.get(DOWNLOAD_ENV) != "1" and not os.path.exists(path):
        return (f"its ImageNet weights cannot be loaded: {os.path.basename(path)} is not in the torch hub cache "
                f"folder {os.path.dirname(path)}. Download {url} on a machine with internet and place it there, "
                "or pass --download to fetch it")  # fmt: skip
    try:
        build(column.model, pretrained=True)
    except MissingWeightsError as error:
        return f"its ImageNet weights cannot be loaded. {error}"
    return None


def _limit_threads(threads: int) -> None:
    """Use ``threads`` CPU threads here and in every kernel started from here, so parallel jobs share the cores."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


def execute(source: Path, output: Path, parameters: dict) -> Path:
    """Run the notebook ``source`` with papermill into ``output``, atomically; a failure raises
    ``NotebookFailed`` naming the cell and keeps the executed notebook as ``*.failed.ipynb``."""
    # jsonschema (under nbformat) imports rfc3987_syntax, which builds a grammar for 2 s on every import, only
    # to check the "iri" string format that no notebook schema uses: without it jsonschema skips that format.
    sys.modules.setdefault("rfc3987_syntax", None)
    import papermill
    from jupyter_client.manager import AsyncKernelManager
    from papermill.exceptions import PapermillExecutionError
    from traitlets import CaselessStrEnum, default

    sockets = tempfile.TemporaryDirectory(prefix="signed-saliency-kernel-")

    class IPCKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

        @default("ip")
        def _ip_default(self):  # each kernel its own socket files: parallel jobs' kernels must not share them
            return os.path.join(sockets.name, "kernel")

        async def _async_interrupt_kernel(self):
            # jupyter_client interrupts every kernel before asking it to shut down; an idle kernel that gets the
            # SIGINT between two messages logs "ERROR | KeyboardInterrupt caught in kernel" in a successful job.
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

    source, output = Path(source), Path(output)
    failed = output.with_suffix(".failed.ipynb")
    with sockets, atomic_path(output) as tmp:
        try:
            papermill.execute_notebook(
                str(source), str(tmp), parameters=parameters, cwd=str(source.parent), kernel_name="python3",
                progress_bar=False, log_output=False, kernel_manager_class=IPCKernelManager,
            )  # fmt: skip
        except PapermillExecutionError as error:
            tmp.replace(failed)
            first_line = (error.source or "").strip().splitlines()[0] if (error.source or "").strip() else ""
            raise NotebookFailed(
                f"{source.name} failed in cell {error.cell_index} (In [{error.exec_count}]: `{first_line}`) "
                f"for {parameters.get('dataset')}/{parameters.get('model')}: {error.ename}: {error.evalue}\n"
                f"the executed notebook is kept at {failed}"
            ) from None
    failed.unlink(missing_ok=True)
    return output


def notebook_job(source: Path, output: Path, timing: Path, parameters: dict, label: str, threads: int) -> float:
    """One notebook job: execute it (its bars shown as ``[label] ...`` lines) and write its wall time."""
    _limit_threads(threads)
    started = time.perf_counter()
    with follow(output.with_suffix(".log"), label):
        execute(source, output, parameters)
    seconds = time.perf_counter() - started
    atomic_write_text(timing, json.dumps({"seconds": round(seconds, 1), "threads": threads,
                                          "numerics": numerics.mode()}) + "\n")  # fmt: skip
    return seconds


def train_job(run: Run, device: str, threads: int):
    """One training job: fit the run's checkpoint (reused when finished, resumed when not); its ``TrainResult``."""
    _limit_threads(threads)
    import torch

    from signed_saliency.training import fit

    torch.set_num_threads(threads)
    with follow(run.timing("train").with_name("train.log"), f"{run.label} · training"):
        return fit(run.column.train_config(run.seed), device=device)


def run_record(notebook_seconds: dict[str, float], device: str = "auto", previous: dict | None = None,
               described: dict | None = None, modes: dict[str, str] | None = None) -> dict:  # fmt: skip
    """Where and with what a column ran: wall time per notebook and in all, device, numerics (``described``,
    from ``numerics.describe``; ``modes``, each notebook's own mode), torch and library versions, commit.
    Notebooks run earlier (``previous``) and not rerun now keep their entries."""
    import torch

    from signed_saliency.training import describe_device

    here = describe_device(device)
    previous = previous or {}
    notebooks = dict(previous.get("notebooks", {}))
    if not notebooks and "wall_seconds" in previous:  # a record from before per-notebook times: the paper's chain
        notebooks[f"{NOTEBOOKS[0]}-{NOTEBOOKS[3]}"] = {"seconds": previous["wall_seconds"],
                                                      "device": previous.get("device", "unknown")}  # fmt: skip
    modes = modes or {}
    notebooks.update({name: {"seconds": round(t, 1), "device": here, **({"numerics": modes[name]} if name in modes
                             else {})} for name, t in notebook_seconds.items()})  # fmt: skip
    devices = list(dict.fromkeys(entry["device"] for entry in notebooks.values()))
    return {"wall_seconds": round(sum(entry["seconds"] for entry in notebooks.values()), 1),
            "device": " and ".join(devices), "notebooks": dict(sorted(notebooks.items())), "torch": torch.__version__,
            "signed_saliency": __version__, "commit": commit(), "python": platform.python_version(),
            "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            **({} if described is None else {"numerics": described})}  # fmt: skip


def invocation(chosen: Plan, jobs: int) -> dict:
    """What the front end starts: when, how many jobs at once, which runs and notebooks (see ``wall_time``)."""
    return {"started": time.time(), "jobs_at_once": jobs, "runs": [r.label for r in chosen.runs],
            "records": {r.label: str(r.record("run")) for r in chosen.runs},
            "notebooks": list(chosen.notebooks)}  # fmt: skip


def wall_time(started: dict, seconds: float) -> dict:
    """The wall-time record of an invocation (``started``, from ``invocation``) that ran jobs: with jobs side by
    side it is less than the sum of their times (which the run records hold), and it is the number a profile's
    time budget is about. Its ``runs`` are those whose jobs ran in it (their run record was written since it
    started), not those found up to date."""
    records_of = started.get("records", {})
    ran = [label for label in started["runs"]
           if label not in records_of or _written_since(Path(records_of[label]), started["started"])]  # fmt: skip
    return {"wall_seconds": round(seconds, 1), "jobs_at_once": started["jobs_at_once"], "runs": ran,
            "notebooks": started["notebooks"], "commit": commit(),
            "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}  # fmt: skip


def _written_since(path: Path, moment: float) -> bool:
    return path.exists() and path.stat().st_mtime >= moment


def tables_job(profile: str, figures_dir: str | Path | None = None) -> list[Path]:
    """The workflow's final job: every table, the findings figure and the README, from the records read once.
    Run by the front end (``$SIGNED_SALIENCY_INVOCATION`` set), it first records the invocation's wall time, so
    that the README written next reports it; only the README's own writing and Snakemake's exit fall outside
    that time."""
    from signed_saliency import readme, report, tables
    from signed_saliency.findings import write_findings_figure
    from signed_saliency.profiles import get_profile

    chosen = get_profile(profile)
    figures = Path(figures_dir) if figures_dir else paths.FIGURES_DIR / profile
    found = records.load(chosen.columns, figures)
    written = [*tables.assemble(chosen, figures, found), *write_findings_figure(chosen, found.own, figures)]
    if os.environ.get(INVOCATION_ENV):
        started = json.loads(os.environ[INVOCATION_ENV])
        record = records.with_last_complete(wall_time(started, time.time() - started["started"]), found.wall_time,
                                            chosen.columns)  # fmt: skip
        records.write_wall_time(figures, record)
        found = dataclasses.replace(found, wall_time=record)
    written = [*written, report.write_summary(chosen, figures, found)]
    top = paths.REPO_ROOT / "README.md"
    if figures == paths.FIGURES_DIR / readme.PROFILE and profile == readme.PROFILE and top.exists():
        # The repository README leads with these records' findings: kept in step with every regeneration.
        written.append(atomic_write_text(top, readme.with_block(top.read_text())))
    return written


def record_job(run: Run, device: str) -> Path:
    """Write the run record from the timings of every notebook of the chain that has run in this build."""
    timings = {nb: json.loads(run.timing(nb).read_text()) for nb in NOTEBOOKS if run.timing(nb).exists()}
    seconds = {nb: timing["seconds"] for nb, timing in timings.items()}
    trained = json.loads(run.timing("train").read_text()) if run.timing("train").exists() else {}
    checkpoint = run.checkpoint
    # Only the job that made this checkpoint timed it (a shorter run's job, say, timed the shorter checkpoint).
    timed = trained.get("checkpoint") == checkpoint.name
    if "01_train" in seconds and timed:  # training ran in its own job: it is part of 01_train's time
        seconds["01_train"] += trained["seconds"]
    # Each notebook's own mode: a notebook not rerun since the mode changed keeps the one it ran under.
    modes = {nb: timing.get("numerics", "not recorded") for nb, timing in timings.items()}
    described = numerics.describe(threads=max((t.get("threads", 1) for t in timings.values()), default=1))
    record = run_record(seconds, device, None, described, modes)
    if checkpoint.exists() and not timed:  # made outside this build's training jobs: its time is unknown
        record["training_untimed"] = True
    return records.write_record(run.figures, "run", run.column.id, record)


def commit() -> str:
    """$SIGNED_SALIENCY_COMMIT if set, else the checkout's git commit (``+dirty`` with local changes), else unknown.

    The variable comes first because a copied tree (a GPU machine's) may carry a stale ``.git``.
    """
    if os.environ.get("SIGNED_SALIENCY_COMMIT"):
        return os.environ["SIGNED_SALIENCY_COMMIT"]
    try:
        git = ["git", "-C", str(paths.REPO_ROOT)]
        head = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout.strip()  # fmt: skip
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _find_run(args) -> Run:
    chosen = plan(args.profile, [args.column], [args.seed], figures_dir=args.figures_dir, build_dir=args.build_dir)
    (run,) = chosen.runs
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One job of the Snakemake workflow (workflow/Snakefile runs these).")
    jobs = parser.add_subparsers(dest="job", required=True)
    for name in ("train", "record"):
        job = jobs.add_parser(name)
        job.add_argument("--profile", required=True)
        job.add_argument("--column", required=True)
        job.add_argument("--seed", type=int, required=True)
        job.add_argument("--figures-dir", required=True)
        job.add_argument("--build-dir", required=True)
        job.add_argument("--device", default="auto")
        job.add_argument("--threads", type=int, default=1)
    notebook = jobs.add_parser("notebook")
    for name in ("--source", "--output", "--timing", "--parameters", "--label"):
        notebook.add_argument(name, required=True)
    notebook.add_argument("--threads", type=int, default=1)
    tables = jobs.add_parser("tables")
    tables.add_argument("--profile", required=True)
    tables.add_argument("--figures-dir", required=True)
    args = parser.parse_args(argv)
    try:
        if args.job == "notebook":
            notebook_job(Path(args.source), Path(args.output), Path(args.timing), json.loads(args.parameters),
                         args.label, args.threads)  # fmt: skip
        elif args.job == "train":
            started = time.perf_counter()
            run = _find_run(args)
            checkpoint = train_job(run, args.device, args.threads).checkpoint.name
            seconds = round(time.perf_counter() - started, 1)
            atomic_write_text(run.timing("train"), json.dumps({"seconds": seconds, "checkpoint": checkpoint}) + "\n")
        elif args.job == "record":
            record_job(_find_run(args), args.device)
        else:
            tables_job(args.profile, args.figures_dir)
    except (NotebookFailed, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

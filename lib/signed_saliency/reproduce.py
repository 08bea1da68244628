"""The batch runner: every notebook of the chain, for every column of a profile, with papermill.

``python -m signed_saliency.reproduce --profile quick [--only cifar10/cnn ...]`` (or
``make reproduce PROFILE=quick``) executes ``notebooks/01_train`` … ``04_appendix`` (the paper),
``06_sanity_checks`` and ``07_beyond_deletion`` (beyond it) for each model × dataset column in order
(``--notebooks`` runs some of them), writing executed notebooks to ``build/<profile>/<column>/``
and figures, result records and tables to ``figures/<profile>/``. Notebooks reuse finished
checkpoints and cached curves, so a rerun with nothing changed redoes no training. Each
executed notebook is written to a temporary file and renamed only when it succeeded; the
first failure stops the run, naming the notebook and the cell, and keeps the failed
notebook as ``*.failed.ipynb``. Pre-trained columns whose ImageNet weights cannot be loaded
are skipped with a message instead of failing the run. ``--archives DIR`` first fills the
data root from the offline archives (``DIR/materialize.py``), so that one command takes a
fresh clone on any machine, a GPU one included, to executed notebooks, figures and tables.
Each finished column leaves ``results/run_<column>.json``: its wall time, the device, and
the versions of torch and of this library (with the git commit when there is one).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from signed_saliency import __version__, paths
from signed_saliency.io import atomic_path
from signed_saliency.models import MissingWeightsError, build
from signed_saliency.profiles import PROFILES, Column, get_profile
from signed_saliency.tables import assemble, read_record, write_record, write_summary
from signed_saliency.training import describe_device

NOTEBOOKS = (
    "01_train",
    "02_qualitative",
    "03_quantitative",
    "04_appendix",
    "06_sanity_checks",
    "07_beyond_deletion",
    "08_metric_controls",
)


class NotebookFailed(RuntimeError):
    """A notebook of the chain raised; the message names it and the failing cell."""


@dataclass
class RunReport:
    profile: str
    figures_dir: Path
    build_dir: Path
    ran: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    outputs: list[Path] = field(default_factory=list)


def run(
    profile: str,
    only: list[str] | None = None,
    *,
    figures_dir: str | Path | None = None,
    build_dir: str | Path | None = None,
    device: str = "auto",
    progress: bool = True,
    notebooks: list[str] | None = None,
) -> RunReport:
    """Run the chain for ``profile`` (optionally only some columns and notebooks); return what ran and where."""
    chosen = get_profile(profile)
    notebooks = list(NOTEBOOKS) if not notebooks else notebooks
    unknown = [n for n in notebooks if n not in NOTEBOOKS]
    if unknown:
        raise ValueError(f"unknown notebooks {unknown}: the chain has {list(NOTEBOOKS)}")
    columns = chosen.select(only)
    figures = Path(figures_dir) if figures_dir else paths.FIGURES_DIR / profile
    build = Path(build_dir) if build_dir else paths.BUILD_DIR / profile
    report = RunReport(profile, figures, build)
    runnable = []
    for column in columns:
        reason = _why_not_runnable(column)
        if reason:
            report.skipped[column.label] = reason
            print(f"skipping {column.label}: {reason}", file=sys.stderr)
        else:
            runnable.append(column)

    from tqdm.auto import tqdm

    steps = tqdm(total=len(runnable) * len(notebooks), desc=f"reproduce {profile}", unit="notebook",
                 disable=not progress)  # fmt: skip
    for column in runnable:
        seconds = {}
        for notebook in notebooks:
            steps.set_postfix_str(f"{column.label} · {notebook}")
            parameters = {**column.parameters(), "profile": profile, "seed": chosen.seed, "device": device,
                          "figures_dir": str(figures), "cache_dir": str(build / "cache")}  # fmt: skip
            started = time.perf_counter()
            execute(notebook, build / column.id / f"{notebook}.ipynb", parameters)
            seconds[notebook] = time.perf_counter() - started
            steps.update()
        report.seconds[column.id] = sum(seconds.values())
        report.ran.append(column.label)
        previous = read_record(figures, "run", column.id)
        write_record(figures, "run", column.id, run_record(seconds, device, previous))
    steps.close()
    report.outputs = write_tables(profile, figures)
    return report


def run_record(notebook_seconds: dict[str, float], device: str = "auto", previous: dict | None = None) -> dict:
    """Where and with what a column ran: wall time per notebook and in all, device, torch and library
    versions, commit. Notebooks run earlier (``previous``) and not rerun now keep their entries."""
    import torch

    here = describe_device(device)
    previous = previous or {}
    notebooks = dict(previous.get("notebooks", {}))
    if not notebooks and "wall_seconds" in previous:  # a record from before per-notebook times: the paper's chain
        notebooks[f"{NOTEBOOKS[0]}-{NOTEBOOKS[3]}"] = {"seconds": previous["wall_seconds"],
                                                      "device": previous.get("device", "unknown")}  # fmt: skip
    notebooks.update({name: {"seconds": round(t, 1), "device": here} for name, t in notebook_seconds.items()})
    devices = list(dict.fromkeys(entry["device"] for entry in notebooks.values()))
    return {"wall_seconds": round(sum(entry["seconds"] for entry in notebooks.values()), 1),
            "device": " and ".join(devices), "notebooks": dict(sorted(notebooks.items())), "torch": torch.__version__,
            "signed_saliency": __version__, "commit": _commit(), "python": platform.python_version(),
            "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}  # fmt: skip


def _commit() -> str:
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


def write_tables(profile: str, figures_dir: str | Path | None = None) -> list[Path]:
    """Tables 1–3, Table B and the profile's README, from the result records in ``figures_dir``."""
    chosen = get_profile(profile)
    figures = Path(figures_dir) if figures_dir else paths.FIGURES_DIR / profile
    return [*assemble(chosen, figures), write_summary(chosen, figures)]


def execute(notebook: str, output: Path, parameters: dict) -> Path:
    """Run ``notebooks/<notebook>.ipynb`` with papermill into ``output``, atomically."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = paths.NOTEBOOKS_DIR / f"{notebook}.ipynb"
    failed = output.with_suffix(".failed.ipynb")
    with atomic_path(output) as tmp:
        try:
            papermill.execute_notebook(
                str(source), str(tmp), parameters=parameters, cwd=str(paths.NOTEBOOKS_DIR),
                kernel_name="python3", progress_bar=False, log_output=False,
            )  # fmt: skip
        except PapermillExecutionError as error:
            tmp.replace(failed)
            first_line = (error.source or "").strip().splitlines()[0] if (error.source or "").strip() else ""
            raise NotebookFailed(
                f"{notebook}.ipynb failed in cell {error.cell_index} (In [{error.exec_count}]: `{first_line}`) "
                f"for {parameters['dataset']}/{parameters['model']}: {error.ename}: {error.evalue}\n"
                f"the executed notebook is kept at {failed}"
            ) from None
    failed.unlink(missing_ok=True)
    return output


def _why_not_runnable(column: Column) -> str | None:
    if not column.pretrained:
        return None
    try:
        build(column.model, pretrained=True)
    except MissingWeightsError as error:
        return f"its ImageNet weights cannot be loaded. {error}"
    return None


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the notebook chain for a profile with papermill.")
    parser.add_argument("--profile", default="auto", choices=["auto", *sorted(PROFILES)],
                        help="auto (default): paper where CUDA is available, quick otherwise")  # fmt: skip
    parser.add_argument("--only", nargs="*", default=None, help="columns to run, e.g. cifar10/cnn imagenette/cnn")
    parser.add_argument("--notebooks", nargs="*", default=None, help=f"some of {', '.join(NOTEBOOKS)} (default all)")
    parser.add_argument("--figures-dir", default=None, help="default figures/<profile>/")
    parser.add_argument("--build-dir", default=None, help="default build/<profile>/")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available, else CPU), cpu, cuda")
    parser.add_argument("--data-root", default=None, help=f"default ${paths.DATA_ENV} or data/")
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
    if args.profile == "auto":
        args.profile, why = choose_profile("auto", args.device)
        print(f"profile auto → {args.profile}: {why}", flush=True)
    if args.tables_only:
        for path in write_tables(args.profile, args.figures_dir):
            print(path)
        return 0
    if args.data_root:
        # The notebooks' kernels inherit the environment, so they read the same data root.
        os.environ[paths.DATA_ENV] = str(Path(args.data_root).resolve())
    started = time.perf_counter()
    try:
        if args.archives:
            datasets = sorted({column.dataset for column in get_profile(args.profile).select(args.only)})
            materialize(args.archives, datasets)
        report = run(args.profile, args.only, figures_dir=args.figures_dir, build_dir=args.build_dir,
                     device=args.device, notebooks=args.notebooks)  # fmt: skip
    except (NotebookFailed, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    minutes = (time.perf_counter() - started) / 60
    print(f"profile {args.profile}: ran {', '.join(report.ran) or 'nothing'} in {minutes:.1f} min")
    for label, reason in report.skipped.items():
        print(f"skipped {label}: {reason.splitlines()[0][:200]}")
    print(f"figures and tables: {report.figures_dir}; executed notebooks: {report.build_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

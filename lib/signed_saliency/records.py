"""The result records: the small JSON files the notebooks and the workflow write, and reading them back.

Each notebook writes its numbers as one record per column (``figures/<profile>/results/<kind>_<column>.json``,
``write_record``); the workflow adds the run record (``run_<column>.json``: where and how long a column ran)
and the wall-time record of its last invocation (``workflow.json``). A training seed other than the
profile's own writes the same files below ``seed<N>/`` (``seed_folder``), and ``seed_records`` gathers a
column's records over every seed found. ``load`` reads every record of a profile once, into the ``Records``
that the tables and the generated README are both made from; ``FIGURES_BY_RECORD`` names the figures each
record's notebook writes, and ``missing_figures`` those of a column that are not on disk.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from signed_saliency.io import atomic_write_text
from signed_saliency.paths import results_dir

# The records of one column: one per notebook that writes numbers, and the workflow's run record.
KINDS = ("train", "deletion_test", "deletion_train", "sanity", "beyond", "controls", "run")
SEEDED_KINDS = ("train", "deletion_test", "controls", "run")  # the kinds the report gathers across training seeds
WALL_TIME_RECORD = "workflow.json"  # in figures/<profile>/results/


def record_path(figures_dir: str | Path, kind: str, column_id: str) -> Path:
    return results_dir(figures_dir) / f"{kind}_{column_id}.json"


def write_record(figures_dir: str | Path, kind: str, column_id: str, record: dict) -> Path:
    """Write one notebook's numbers for one column, atomically."""
    path = record_path(figures_dir, kind, column_id)
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return path


def read_record(figures_dir: str | Path, kind: str, column_id: str) -> dict | None:
    """One column's record of ``kind``, or None where it has not been written."""
    path = record_path(figures_dir, kind, column_id)
    return json.loads(path.read_text()) if path.exists() else None


def train_record(result) -> dict:
    """Table 1's entry for one column, from a ``TrainResult``."""
    return {"test_accuracy": result.test_accuracy, "epochs": result.config.epochs,
            "train_images": result.train_images, "test_images": result.test_images,
            "data_source": result.data_source, "checkpoint": result.checkpoint.name,
            "history": result.history, "numerics": result.numerics,
            **({"extended_from": result.extended_from} if result.extended_from else {})}  # fmt: skip


def seed_folder(root: Path, seed: int, default_seed: int) -> Path:
    """``root`` for the profile's own seed, ``root/seed<N>`` for another."""
    return root if seed == default_seed else root / f"seed{seed}"


def seed_folders(root: str | Path) -> list[Path]:
    """The ``seed<N>`` folders of other seeds' runs below ``root``, by seed."""
    found = [f for f in Path(root).glob("seed*") if f.is_dir() and f.name[4:].isdigit()]
    return sorted(found, key=lambda f: int(f.name[4:]))


def seed_records(figures_dir: str | Path, kind: str, column_id: str) -> list[dict]:
    """A column's records of ``kind`` from every training seed found: the profile's own seed's (in
    ``figures_dir``) first, then those of ``seed<N>/`` folders below it, by seed."""
    found = [read_record(folder, kind, column_id) for folder in [Path(figures_dir), *seed_folders(figures_dir)]]
    return [r for r in found if r is not None]


def wall_time_record(figures_dir: str | Path) -> Path:
    """Where the last workflow invocation's own wall time is recorded (``write_wall_time``)."""
    return results_dir(figures_dir) / WALL_TIME_RECORD


def write_wall_time(figures_dir: str | Path, record: dict) -> Path:
    path = wall_time_record(figures_dir)
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return path


def covers(record: Mapping, columns) -> bool:
    """Whether the invocation of the wall-time ``record`` ran every one of ``columns`` (any seed)."""
    return all(any(run.startswith(f"{column.label} seed ") for run in record.get("runs", ())) for column in columns)


def last_full_run(record: Mapping, columns) -> Mapping | None:
    """The wall-time record of the last invocation that ran every one of ``columns``: ``record`` itself, or the
    ``last_complete`` it keeps (``with_last_complete``); None when there is none."""
    return record if covers(record, columns) else record.get("last_complete")


def with_last_complete(record: dict, previous: Mapping | None, columns) -> dict:
    """The wall-time ``record`` to write over ``previous``: one that ran only some of ``columns`` (``ONLY=...``)
    keeps the last invocation that ran them all as ``last_complete``, the profile's full time."""
    if covers(record, columns) or not previous:
        return record
    full = last_full_run(previous, columns)
    return {**record, "last_complete": dict(full)} if full else record


def read_wall_time(figures_dir: str | Path) -> dict | None:
    path = wall_time_record(figures_dir)
    return json.loads(path.read_text()) if path.exists() else None


@dataclass(frozen=True)
class Records:
    """Every record of a profile's folder, each read once: ``own[column id][kind]`` (None where missing),
    ``seeds[column id][kind]`` for the ``SEEDED_KINDS`` over every training seed found (the profile's own
    seed first), and the last invocation's wall time."""

    own: dict[str, dict[str, dict | None]]
    seeds: dict[str, dict[str, list[dict]]]
    wall_time: dict | None

    def of(self, kind: str, columns) -> list[dict | None]:
        """The record of ``kind`` of each of ``columns``, in order."""
        return [self.own[c.id][kind] for c in columns]


def load(columns, figures_dir: str | Path) -> Records:
    """Read the records of ``columns`` in ``figures_dir`` and its ``seed<N>/`` folders, each file once."""
    others = seed_folders(figures_dir)
    own = {c.id: {kind: read_record(figures_dir, kind, c.id) for kind in KINDS} for c in columns}
    seeds = {}
    for column in columns:
        seeds[column.id] = {}
        for kind in SEEDED_KINDS:
            found = [own[column.id][kind], *(read_record(folder, kind, column.id) for folder in others)]
            seeds[column.id][kind] = [r for r in found if r is not None]
    return Records(own, seeds, read_wall_time(figures_dir))


# The figures each notebook writes per column (``<stem>_<column id>.png``/``.pdf``, or ``.jpg`` for map grids),
# keyed by the result record that shows the notebook ran.
FIGURES_BY_RECORD = {
    "train": ("fig_training",),
    "deletion_test": ("fig_maps", "fig_deletion_black_test", "fig_deletion_white_test"),
    "deletion_train": ("appendixA_maps", "appendixB_deletion_black_train", "appendixB_deletion_white_train"),
    "sanity": ("fig_sanity_class_sensitivity", "fig_sanity_randomization", "fig_sanity_examples_class",
               "fig_sanity_examples_randomized"),
    "beyond": ("fig_beyond_auc", "fig_beyond_darker0.5", "fig_beyond_brighter0.5"),
    "controls": ("fig_controls_curves", "fig_controls_srg_leakage", "fig_controls_decomposition"),
}  # fmt: skip


def missing_figures(figures_dir: str | Path, column, written: dict | None = None) -> list[str]:
    """The figures of the notebooks whose records exist for ``column`` (``written``: its records by kind, read
    from ``figures_dir`` when not given) but that are not in ``figures_dir``."""
    figures_dir = Path(figures_dir)
    written = written if written is not None else load([column], figures_dir).own[column.id]
    missing = []
    for kind, stems in FIGURES_BY_RECORD.items():
        if written[kind] is None:
            continue
        for stem in stems:
            name = f"{stem}_{column.id}"
            if not any((figures_dir / f"{name}{suffix}").exists() for suffix in (".png", ".jpg")):
                missing.append(name)
    return missing

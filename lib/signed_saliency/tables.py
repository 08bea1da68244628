"""Per-column result records and the paper's Tables 1–3 assembled from them.

Each notebook writes its numbers as a small JSON record per column
(``figures/<profile>/results/<kind>_<column>.json``). ``assemble`` reads every record of a
profile and writes Table 1 (test accuracy), Table 2 (black-deletion AUC), Table 3
(white-deletion AUC) and Table B (Appendix B, AUC on the train split) as CSV (the record),
Markdown and LaTeX in ``figures/<profile>/tables/``, laid out like the paper: one column per
model × dataset, one row per method, the paper's value beside ours, and the epochs and
numbers of images used. ``write_summary`` turns the same records into the profile's
README, column by column, with no number typed by hand.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from signed_saliency.attribution import ATTRIBUTIONS, RELU_RULES
from signed_saliency.controls import CLAIMS as _CLAIMS
from signed_saliency.controls import across_seeds, seed_verdicts
from signed_saliency.data import SOURCE_NAMES, TEST_SPLIT, expected_count
from signed_saliency.evaluation import BEYOND_FILLS
from signed_saliency.io import atomic_write_text
from signed_saliency.paths import FIGURES_DIR, results_dir
from signed_saliency.profiles import Profile, get_profile
from signed_saliency.saliency import METHODS
from signed_saliency.workflow import seed_folders, wall_time_record

# The paper's published values (Tables 1–3), keyed by column id.
PAPER_ACCURACY = {
    "cifar10_cnn": 0.6307, "cifar10_resnet18": 0.7569, "imagenette_cnn": 0.6205,
    "imagenette_resnet18": 0.8357, "imagenette_resnet18-pretrained": 0.9733,
    "imagenette_convnext_tiny-pretrained": 0.9932,
}  # fmt: skip
_PAPER_COLUMNS = ("cifar10_cnn", "cifar10_resnet18", "imagenette_cnn", "imagenette_resnet18",
                  "imagenette_resnet18-pretrained", "imagenette_convnext_tiny-pretrained")  # fmt: skip
PAPER_AUC = {
    "black/original": dict(zip(_PAPER_COLUMNS, (0.23, 0.23, 0.24, 0.26, 0.28, 0.49))),
    "black/positive": dict(zip(_PAPER_COLUMNS, (0.14, 0.11, 0.12, 0.14, 0.21, 0.37))),
    "black/active": dict(zip(_PAPER_COLUMNS, (0.15, 0.11, 0.16, 0.14, 0.24, 0.39))),
    "white/original": dict(zip(_PAPER_COLUMNS, (0.21, 0.22, 0.21, 0.23, 0.26, 0.46))),
    "white/negative": dict(zip(_PAPER_COLUMNS, (0.14, 0.12, 0.11, 0.18, 0.20, 0.37))),
    "white/inactive": dict(zip(_PAPER_COLUMNS, (0.15, 0.12, 0.14, 0.16, 0.23, 0.42))),
}
CLASSES = 10  # both datasets; chance accuracy is 1 / CLASSES
TABLES = {
    "table1_test_accuracy": "Table 1: test accuracy",
    "table2_black_deletion_auc": "Table 2: AUC of black-deletion allegiance curves (test split; lower is better)",
    "table3_white_deletion_auc": "Table 3: AUC of white-deletion allegiance curves (test split; lower is better)",
    "tableB_train_deletion_auc": "Appendix B: AUC of deletion curves on the train split (lower is better)",
    "tableS_sanity_checks": "Sanity checks: class sensitivity (Spearman of the highest- vs lowest-class maps) and "
    "Spearman with the trained maps once every layer is re-initialised (lower = passes)",
    "tableD_beyond_deletion_auc": "Deletion AUC of every attribution method, map kind and fill (lower is better)",
    "tableC_metric_controls": "Table C: controls for the deletion metric (PROTOCOL §8), mean [95 % paired bootstrap "
    "interval] over test images; random controls mean ± sd over random-map seeds",
}
# The figures each notebook writes per column (``<stem>_<column id>.png``/``.pdf``, or ``.jpg`` for map grids),
# keyed by the result record that shows the notebook ran.
FIGURES_BY_RECORD = {
    "train": ("fig_training",),
    "deletion_test": ("fig_maps", "fig_deletion_black_test", "fig_deletion_white_test"),
    "deletion_train": ("appendixA_maps", "appendixB_deletion_black_train", "appendixB_deletion_white_train"),
    "sanity": ("fig_sanity_class_sensitivity", "fig_sanity_randomization", "fig_sanity_examples_class",
               "fig_sanity_examples_randomized"),
    "beyond": ("fig_beyond_auc", "fig_beyond_darker0.5", "fig_beyond_brighter0.5"),
    "controls": ("fig_controls_curves", "fig_controls_srg_leakage"),
}  # fmt: skip
# Thresholds of the verdicts written into the README (the numbers themselves are in the tables).
IGNORES_CLASS = 0.9  # mean Spearman(highest-class map, lowest-class map) at or above: the map ignores the class
SURVIVES_RANDOMIZATION = 0.5  # mean Spearman with the trained maps after re-initialising every layer


# The copies the loader prefers today (PROTOCOL §3); a record made on another one is older data.
CURRENT_SOURCES = {"cifar10": ("torchvision (official)", SOURCE_NAMES["cifar10-lossless"]),
                   "imagenette": ("torchvision (official)", SOURCE_NAMES["imagenette"])}  # fmt: skip
_SOURCE_DIRS = {name: folder for folder, name in SOURCE_NAMES.items()}


def data_copy(dataset: str, train_size: int | None, train: dict) -> tuple[str, bool]:
    """What a column's model was trained on, in words, and whether that is today's complete data.

    Today's data is the copy the loader now prefers with every image the column asks for: all the
    split's colour images (per MANIFEST.json's totals) when ``train_size`` is None, else that many.
    """
    source, used = train["data_source"], train["train_images"]
    folder = _SOURCE_DIRS.get(source)
    split_size = expected_count(folder, "train", "drop") if folder else None
    if split_size is None:  # torchvision's own files, a copy we do not know, or no manifest to compare with
        return f"{used} training images ({source})", True
    wanted = split_size if train_size is None else min(train_size, split_size)
    subset = "all" if used == split_size else f"a seeded subset of {used}"
    colour = "colour " if split_size != expected_count(folder, "train") else ""
    text = f"{subset} of the {split_size} {colour}train images of the {source} copy"
    if source not in CURRENT_SOURCES[dataset]:
        return text + f"; **older data**: the loader now prefers the {CURRENT_SOURCES[dataset][1]} copy", False
    if used != wanted:
        return (f"{used} training images of the {source} copy, made when it held fewer; **older data**: "
                f"the split now has {split_size} {colour}images"), False  # fmt: skip
    return text, True


def write_record(figures_dir: str | Path, kind: str, column_id: str, record: dict) -> Path:
    """Write one notebook's numbers for one column, atomically."""
    path = results_dir(figures_dir) / f"{kind}_{column_id}.json"
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return path


def train_record(result) -> dict:
    """Table 1's entry for one column, from a ``TrainResult``."""
    return {"test_accuracy": result.test_accuracy, "epochs": result.config.epochs,
            "train_images": result.train_images, "test_images": result.test_images,
            "data_source": result.data_source, "checkpoint": result.checkpoint.name,
            "history": result.history}  # fmt: skip


def read_record(figures_dir: str | Path, kind: str, column_id: str) -> dict | None:
    path = results_dir(figures_dir) / f"{kind}_{column_id}.json"
    return json.loads(path.read_text()) if path.exists() else None


def seed_records(figures_dir: str | Path, kind: str, column_id: str) -> list[dict]:
    """A column's records of ``kind`` from every training seed found: the profile's own seed's (in
    ``figures_dir``) first, then those of ``seed<N>/`` folders below it, by seed."""
    found = [read_record(folder, kind, column_id) for folder in [Path(figures_dir), *seed_folders(figures_dir)]]
    return [r for r in found if r is not None]


def table_rows(profile: Profile, figures_dir: str | Path) -> dict[str, tuple[list[str], list[list]]]:
    """Each table as (header, rows); a column without a record yet shows as empty cells. Where a column has
    records of several training seeds (``seed_records``), Tables 1–3 and C add their mean ± sd across seeds."""
    columns = list(profile.columns)
    header = ["row", *[c.label for c in columns]]
    record = {kind: [read_record(figures_dir, kind, c.id) for c in columns]
              for kind in ("train", "deletion_test", "deletion_train")}  # fmt: skip
    seeds = {kind: [seed_records(figures_dir, kind, c.id) for c in columns]
             for kind in ("train", "deletion_test", "controls")}  # fmt: skip
    several = any(len(found) > 1 for found in seeds["train"])

    def value(records, get):
        return [None if r is None else get(r) for r in records]

    def spread(kind, get):
        """Mean ± sd across seeds of ``get(record)`` per column (None with fewer than two seeds)."""
        return [spread_text(across_seeds([get(r) for r in found])) if len(found) > 1 else None
                for found in seeds[kind]]  # fmt: skip

    def auc_rows(kind, keys, with_paper):
        rows = []
        for key in keys:
            rows.append([key, *value(record[kind], lambda r, k=key: r["curves"][k]["auc"])])
            if with_paper and several:
                rows.append(
                    [f"{key} (mean ± sd over training seeds)", *spread(kind, lambda r, k=key: r["curves"][k]["auc"])]
                )
            if with_paper:
                rows.append([f"{key} (paper)", *[PAPER_AUC[key].get(c.id) for c in columns]])
        rows.append(["images", *value(record[kind], lambda r: r["images"])])
        rows.append(["epochs", *value(record["train"], lambda r: r["epochs"])])
        return rows

    table1 = [
        ["test accuracy", *value(record["train"], lambda r: r["test_accuracy"])],
        ["test accuracy (paper)", *[PAPER_ACCURACY.get(c.id) for c in columns]],
        *(
            [
                ["test accuracy (mean ± sd over training seeds)", *spread("train", lambda r: r["test_accuracy"])],
                ["training seeds", *[len(found) or None for found in seeds["train"]]],
            ]
            if several
            else []
        ),
        ["epochs", *value(record["train"], lambda r: r["epochs"])],
        ["train images", *value(record["train"], lambda r: r["train_images"])],
        ["test images", *value(record["train"], lambda r: r["test_images"])],
    ]
    black = ("black/original", "black/positive", "black/active")
    white = ("white/original", "white/negative", "white/inactive")
    sanity = [read_record(figures_dir, "sanity", c.id) for c in columns]
    beyond = [read_record(figures_dir, "beyond", c.id) for c in columns]
    sanity_rows, beyond_rows = [], []
    for method, kind in _keys(sanity, lambda r: [(m, k) for m, v in r["class_sensitivity"].items() for k in v]):
        cells = value(sanity, lambda r, m=method, k=kind: r["class_sensitivity"].get(m, {}).get(k))
        sanity_rows.append([f"{method}/{kind} class sensitivity", *cells])
    for method, kind in _keys(
        sanity, lambda r: [(m, k) for m, v in r["randomization"].items() for k in v[-1]["spearman"]]
    ):
        sanity_rows.append([f"{method}/{kind} randomised",
                            *value(sanity, lambda r, m=method, k=kind: final_randomization(r, m, k))])  # fmt: skip
    for key in _keys(beyond, lambda r: list(r["curves"])):
        beyond_rows.append([key, *value(beyond, lambda r, k=key: r["curves"].get(k, {}).get("auc"))])
    controls = [read_record(figures_dir, "controls", c.id) for c in columns]
    control_rows = [[name, *value(controls, lambda r, n=name: interval_text(r["intervals"].get(n)))]
                    for name in _keys(controls, lambda r: list(r["intervals"]))]  # fmt: skip
    control_rows += [[f"random {name} AUC (mean ± sd over random-map seeds)",
                      *value(controls, lambda r, n=name: spread_text(r["random"].get(n)))]
                     for name in _keys(controls, lambda r: list(r["random"]))]  # fmt: skip
    control_rows += [
        [
            f"mask leakage {kind} at {float(p):.0%}",
            *value(controls, lambda r, k=kind, q=p: r["leakage"].get(k, {}).get(q)),
        ]
        for kind, p in _keys(controls, lambda r: [(k, q) for k, v in r["leakage"].items() for q in v])
    ]
    if several:  # the claims' differences: each seed's bootstrap mean, then their mean ± sd across seeds
        control_rows += [[f"{name} (mean ± sd over training seeds)",
                          *spread("controls", lambda r, n=name: r["intervals"][n][0])]
                         for fill, kind in _CLAIMS
                         for name in (f"diff {kind}-original/{fill}", f"diff {kind}-matched/{fill}")]  # fmt: skip
    control_rows += [[name, *value(controls, lambda r, n=name: r[n])]
                     for name in ("images", "train_images", "resamples")]  # fmt: skip
    return {
        "table1_test_accuracy": (header, table1),
        "table2_black_deletion_auc": (header, auc_rows("deletion_test", black, True)),
        "table3_white_deletion_auc": (header, auc_rows("deletion_test", white, True)),
        "tableB_train_deletion_auc": (header, auc_rows("deletion_train", black + white, False)),
        "tableS_sanity_checks": (header, [*sanity_rows, ["images", *value(sanity, lambda r: r["images"])]]),
        "tableD_beyond_deletion_auc": (header, [*beyond_rows, ["images", *value(beyond, lambda r: r["images"])]]),
        "tableC_metric_controls": (header, control_rows),
    }


def interval_text(interval, digits: int = 3) -> str | None:
    """``[mean, low, high]`` as "mean [low, high]" (None stays None: not measured)."""
    if interval is None:
        return None
    mean, low, high = interval
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def spread_text(spread, digits: int = 3) -> str | None:
    """``{"mean", "sd"}`` as "mean ± sd" (with ``"n"``: "mean ± sd (n seeds)")."""
    if spread is None:
        return None
    text = f"{spread['mean']:.{digits}f} ± {spread['sd']:.{digits}f}"
    return f"{text} ({spread['n']} seeds)" if "n" in spread else text


def control_lines(record: dict) -> list[str]:
    """The verdicts of PROTOCOL §8 on the paper's four claims, one line each, numbers from a ``controls`` record."""
    intervals, verdicts = record["intervals"], record["verdicts"]
    lines = []
    for fill, kind in _CLAIMS:
        verdict = verdicts[f"{fill}/{kind}"]
        parts = [f"AUC({kind}) − AUC(original) {interval_text(intervals[f'diff {kind}-original/{fill}'])}: "
                 + ("resolved at 95 %" if verdict["resolved"] else "**not resolved** at 95 %"),
                 f"against count-matched random {interval_text(intervals[f'diff {kind}-matched/{fill}'])}: "
                 + ("beats it" if verdict["beats_matched_random"] else "**does not beat it**")]  # fmt: skip
        if verdict["survives_imputation_srg"] is not None:
            gain = interval_text(intervals[f"diff srg {kind}-original/imputation"])
            parts.append(f"SRG gain over the original under imputation {gain}: "
                         + ("survives" if verdict["survives_imputation_srg"] else "**does not survive**"))  # fmt: skip
        else:
            parts.append("imputation fill not run")
        against_directed = f"against the directed-fill original {interval_text(intervals[f'diff {kind}-directed'])}: "
        if not verdict["resolved"]:
            parts.append(against_directed + "no resolved gap to close")
        else:
            parts.append(against_directed + ("**the directed fill closes the gap**" if verdict["directed_closes_gap"]
                                             else "the gap stays"))  # fmt: skip
        lines.append(f"- {fill} deletion, {kind}: " + "; ".join(parts) + ".")
    leakage = record.get("leakage", {})
    if leakage:
        best = max(((v, k, p) for k, per in leakage.items() for p, v in per.items()), default=None)
        lines.append(f"- Mask leakage: a small CNN reading only the deletion masks of {record['train_images']} train "
                     f"images names the model's prediction on {record['images']} test images with accuracy up to "
                     f"{best[0]:.3f} ({best[1]} map, {float(best[2]):.0%} deleted); naming the most frequent "
                     f"prediction scores {record.get('leakage_baseline', 1 / CLASSES):.3f}.")  # fmt: skip
    return lines


def _keys(records, keys_of) -> list:
    """The union of every record's keys, in first-seen order."""
    return list(dict.fromkeys(k for r in records if r is not None for k in keys_of(r)))


def _ordered(names, canonical) -> list:
    """``names`` in the order of ``canonical`` (records are written with sorted keys), unknown ones last."""
    rank = {name: i for i, name in enumerate(canonical)}
    return sorted(dict.fromkeys(names), key=lambda name: (rank.get(name, len(rank)), name))


def final_randomization(record: dict, method: str, kind: str) -> float | None:
    """Mean Spearman with the trained maps once every layer is re-initialised (None if not computed)."""
    steps = record["randomization"].get(method)
    return steps[-1]["spearman"].get(kind) if steps else None


def _ignores_class(sensitivity: float | None) -> bool:
    return not is_undefined(sensitivity) and sensitivity >= IGNORES_CLASS


def _survives(randomized: float | None) -> bool:
    return not is_undefined(randomized) and randomized >= SURVIVES_RANDOMIZATION


def sanity_lines(record: dict) -> list[str]:
    """What the sanity checks say, per method, in words and numbers, from a ``sanity`` record."""
    lines = []
    for method in _ordered(record["class_sensitivity"], ATTRIBUTIONS):
        sensitivity = {k: record["class_sensitivity"][method][k] for k in _ordered(record["class_sensitivity"][method],
                                                                                   METHODS)}  # fmt: skip
        ignoring = [k for k, v in sensitivity.items() if _ignores_class(v)]
        surviving = [k for k in sensitivity if _survives(final_randomization(record, method, k))]
        numbers = ", ".join(f"{k} {_cell(v, 2)}/{_cell(final_randomization(record, method, k), 2)}"
                            for k, v in sensitivity.items())  # fmt: skip
        verdict = []
        verdict.append(f"ignore the class: {', '.join(ignoring)}" if ignoring else "every kind depends on the class")
        verdict.append(f"survive randomisation: {', '.join(surviving)}" if surviving else "every kind changes "
                       "under randomisation")  # fmt: skip
        lines.append(f"- {method} (class sensitivity / randomised Spearman: {numbers}): {'; '.join(verdict)}.")
    for method, reason in record.get("not_applicable", {}).items():
        lines.append(f"- {method}: not applicable: {reason}.")
    return lines


def verdict_lines(sanity: dict | None, beyond: dict | None) -> list[str]:
    """The answers in one place: do the paper's positive and active maps pass both checks, what goes
    against the related work's expectations, and does graded deletion support the paper's conjecture."""
    lines = []
    if sanity and "gradient" in sanity["class_sensitivity"]:
        for kind in ("positive", "active"):
            sensitivity = sanity["class_sensitivity"]["gradient"].get(kind)
            randomized = final_randomization(sanity, "gradient", kind)
            known = not is_undefined(sensitivity) and not is_undefined(randomized)
            passes = known and not _ignores_class(sensitivity) and not _survives(randomized)
            verdict = "passes" if passes else "**fails**"
            lines.append(f"- The paper's {kind} map (plain gradient) {verdict} both checks: "
                         f"class sensitivity {_cell(sensitivity, 2)}, Spearman {_cell(randomized, 2)}"
                         " with the trained maps after full randomisation.")  # fmt: skip
    if sanity:
        against = []
        for method in _ordered(sanity["class_sensitivity"], ATTRIBUTIONS):
            for kind in ("original", "positive"):
                sensitivity = sanity["class_sensitivity"][method].get(kind)
                randomized = final_randomization(sanity, method, kind)
                ignores, survives = _ignores_class(sensitivity), _survives(randomized)
                if method in RELU_RULES and not (ignores and survives):
                    what = [w for w, bad in (("depends on the class", not ignores),
                                             ("changes under randomisation", not survives)) if bad]  # fmt: skip
                    against.append(f"{method} {kind} {' and '.join(what)}, although expected not to")
                elif method not in RELU_RULES and (ignores or survives):
                    what = [w for w, bad in (("ignores the class", ignores), ("survives randomisation", survives))
                            if bad]  # fmt: skip
                    against.append(f"{method} {kind} {' and '.join(what)}, although expected not to")
        lines.append("- Against the related work's expectations: " + ("; ".join(against) if against else "nothing")
                     + ".")  # fmt: skip
    if beyond and any(k.startswith("gradient/") for k in beyond["curves"]):
        curves = beyond["curves"]
        for signed, active, extreme, mild in (("positive", "active", "black", "darker:0.5"),
                                              ("negative", "inactive", "white", "brighter:0.5")):  # fmt: skip
            if f"gradient/{mild}/{signed}" not in curves:
                continue
            gaps = [curves[f"gradient/{fill}/{signed}"]["auc"] - curves[f"gradient/{fill}/{active}"]["auc"]
                    for fill in (extreme, mild)]  # fmt: skip
            supported = gaps[1] > gaps[0]  # the signed map's advantage shrinks (or reverses) with a milder fill
            lines.append(f"- The paper's conjecture, plain gradient, {signed} vs {active}: AUC gap {gaps[0]:+.3f} with "
                         f"{extreme}, {gaps[1]:+.3f} with {mild}: "
                         + ("supported (the gap moves towards the active-type map)" if supported
                            else "**not supported** (the gap moves towards the signed map)") + ".")  # fmt: skip
    return lines


def beyond_lines(record: dict) -> list[str]:
    """Which map kind deletes best (lowest AUC) per method and fill, from a ``beyond`` record."""
    curves = record["curves"]
    methods = _ordered((k.split("/")[0] for k in curves), ATTRIBUTIONS)
    fills = _ordered((k.split("/")[1] for k in curves), BEYOND_FILLS)
    lines = []
    for method in methods:
        winners = []
        for fill in fills:
            aucs = {k.split("/")[2]: c["auc"] for k, c in curves.items() if k.startswith(f"{method}/{fill}/")}
            best = min(aucs, key=aucs.get)
            winners.append(f"{fill}: {best} ({aucs[best]:.3f}; original {aucs['original']:.3f})")
        lines.append(f"- {method}: " + "; ".join(winners) + ".")
    return lines


def conjecture_lines(record: dict) -> list[str]:
    """The paper's conjecture: black/white extremes favour positive/negative maps over active/inactive ones,
    so the gap should narrow or reverse for milder (graded) fills. Gaps are AUC(signed) − AUC(active-type)."""
    curves = record["curves"]
    fills = _ordered((k.split("/")[1] for k in curves), BEYOND_FILLS)
    families = (("positive", "active", [f for f in fills if f == "black" or f.startswith("darker")]),
                ("negative", "inactive", [f for f in fills if f == "white" or f.startswith("brighter")]))  # fmt: skip
    lines = []
    for method in _ordered((k.split("/")[0] for k in curves), ATTRIBUTIONS):
        parts = []
        for signed, active, family in families:
            gaps = [(fill, curves[f"{method}/{fill}/{signed}"]["auc"] - curves[f"{method}/{fill}/{active}"]["auc"])
                    for fill in family]  # fmt: skip
            parts.append(f"{signed} − {active}: " + ", ".join(f"{fill} {gap:+.3f}" for fill, gap in gaps))
        lines.append(f"- {method}: " + "; ".join(parts) + ".")
    return lines


def assemble(profile: Profile, figures_dir: str | Path) -> list[Path]:
    """Write every table as CSV, Markdown and LaTeX under ``<figures_dir>/tables``."""
    written = []
    for stem, (header, rows) in table_rows(profile, figures_dir).items():
        folder = Path(figures_dir) / "tables"
        written.append(atomic_write_text(folder / f"{stem}.csv", _csv(header, rows)))
        written.append(atomic_write_text(folder / f"{stem}.md", _markdown(TABLES[stem], header, rows)))
        written.append(atomic_write_text(folder / f"{stem}.tex", _latex(TABLES[stem], header, rows)))
    return written


UNDEFINED = "n/a"  # how Markdown and LaTeX show a value that does not exist; CSV leaves the cell empty


def is_undefined(value) -> bool:
    """No value: not measured (None) or not defined (NaN, e.g. no rank correlation for a constant map)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell(value, digits: int = 3) -> str:
    if is_undefined(value):
        return UNDEFINED
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _format_row(row, accuracy: bool) -> list[str]:
    # The paper prints accuracy with 4 decimals and AUC with 2: its values are shown as printed.
    digits = 4 if accuracy else 2 if row[0].endswith("(paper)") else 3
    return [row[0], *(_cell(v, digits) for v in row[1:])]


def _csv(header, rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(
            [row[0], *("" if is_undefined(v) else (repr(v) if isinstance(v, float) else v) for v in row[1:])]
        )
    return out.getvalue()


def _markdown(title, header, rows) -> str:
    accuracy = title.startswith("Table 1")
    lines = [f"**{title}**", "", "| | " + " | ".join(header[1:]) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(_format_row(row, accuracy)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _latex(title, header, rows) -> str:
    accuracy = title.startswith("Table 1")

    def escape(text: str) -> str:
        return text.replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")

    lines = [
        "% Written by signed_saliency.tables; do not edit by hand.",
        r"\begin{table}[ht]",
        r"\centering",
        rf"\caption{{{escape(title)}}}",
        rf"\begin{{tabular}}{{l{'r' * (len(header) - 1)}}}",
        r"\hline",
        " & ".join(["", *(escape(h) for h in header[1:])]) + r" \\",
        r"\hline",
        *(" & ".join(escape(c) for c in _format_row(row, accuracy)) + r" \\" for row in rows),
        r"\hline",
        r"\end{tabular}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def write_tables(profile: str, figures_dir: str | Path | None = None) -> list[Path]:
    """Tables 1–3, Table B and the profile's README, from the result records in ``figures_dir``."""
    chosen = get_profile(profile)
    figures = Path(figures_dir) if figures_dir else FIGURES_DIR / profile
    return [*assemble(chosen, figures), write_summary(chosen, figures)]


def write_summary(profile: Profile, figures_dir: str | Path) -> Path:
    """``<figures_dir>/README.md``: ours beside the paper's, cell by cell, then column by column, from the records."""
    figures_dir = Path(figures_dir)
    records = {c.id: {kind: read_record(figures_dir, kind, c.id)
                      for kind in ("train", "deletion_test", "run", "controls")}
               for c in profile.columns}  # fmt: skip
    done = [c for c in profile.columns if records[c.id]["train"] and records[c.id]["deletion_test"]]
    lines = [
        f"# Results of the `{profile.name}` profile",
        "",
        f"Written by `python -m signed_saliency.reproduce --profile {profile.name}`; every number below is read "
        "from `results/*.json`, which the notebooks and the runner wrote. Profile: " + profile.description + ".",
        "",
        "Lower AUC means the map found pixels whose deletion changes the prediction sooner. The paper's claim: "
        "positive and active maps give a lower black-deletion AUC than the original map, and negative and "
        "inactive maps a lower white-deletion AUC.",
        "",
    ]
    lines += _changes_from_paper(profile)
    lines += _wall_time(profile, records, figures_dir)
    if done:
        lines += _data_overview(done, records)
        lines += _side_by_side(done, records)
        lines += _directions(done, records)
    for column in profile.columns:
        lines += _column_section(column, records[column.id], figures_dir)
    beyond = [(c, read_record(figures_dir, "sanity", c.id), read_record(figures_dir, "beyond", c.id))
              for c in profile.columns]  # fmt: skip
    if any(sanity or curves for _, sanity, curves in beyond):
        lines += _beyond_section(beyond)
    controls = [(c, read_record(figures_dir, "controls", c.id), seed_records(figures_dir, "controls", c.id))
                for c in profile.columns]  # fmt: skip
    if any(record for _, record, _ in controls):
        lines += _controls_section(controls)
    lines += [
        "## Files",
        "",
        "- `tables/`: Tables 1–3, Appendix B's AUC table, the sanity checks (S), other "
        "methods (D) and the metric controls (C), as CSV, Markdown and LaTeX.",
    ]
    lines += [f"- `{p.name}`" for p in sorted([*figures_dir.glob("*.png"), *figures_dir.glob("*.jpg")])]
    return atomic_write_text(figures_dir / "README.md", "\n".join(lines) + "\n")


def _changes_from_paper(profile: Profile) -> list[str]:
    """What the profile changes from the paper's protocol (PROTOCOL §2–§5), column by column."""
    lines = ["## What this profile changes from the paper", ""]
    changes = []
    for column in profile.columns:
        test_split = TEST_SPLIT[column.dataset]
        folder = "cifar10-lossless" if column.dataset == "cifar10" else column.dataset
        sizes = {split: expected_count(folder, split, "drop") for split in ("train", test_split)}

        def of(n, split, sizes=sizes):
            total = sizes[split]
            return f"{n} of the {total} {split} images" if total else f"{n} {split} images"

        differs = [f"{column.epochs} epochs instead of 50"] if column.epochs != 50 else []
        for value, split, what in ((column.train_size, "train", "for training"),
                                   (column.test_size, test_split, "for Table 1's accuracy"),
                                   (column.deletion_images, test_split, "for Tables 2–3"),
                                   (column.appendix_images, "train", "for Appendix B")):  # fmt: skip
            if value is not None:
                differs.append(f"{of(value, split)} {what}")
        if differs:
            changes.append(f"- {column.label}: " + "; ".join(differs) + ".")
    if not changes:
        lines.append("Nothing: every column follows the paper's protocol (50 epochs, full splits).")
    else:
        lines += ["The paper's optimiser, batch size, learning rate, resolution and architectures are kept; only "
                  "these differ (seeded subsets, the same for every map kind):", "", *changes]  # fmt: skip
    lines.append(
        "- Every column: the sanity checks (notebook 06), the other methods' curves (notebook 07) and the metric "
        "controls (notebook 08) are beyond the paper and run on a seeded subset of the test split (`sanity_images`, "
        "`beyond_images`, `controls_images`: "
        + ", ".join(f"{c.label} {'all' if c.controls_images is None else c.controls_images}" for c in profile.columns)
        + " images for 08, with as many train images for its mask-leakage test)."
    )
    return [*lines, ""]


def _wall_time(profile: Profile, records, figures_dir: Path) -> list[str]:
    """The profile's measured times: the last workflow invocation's wall time, then the sum of its columns'
    job times in their last runs (the same thing when jobs ran one at a time, more when they shared the cores)."""
    runs = {c.label: records[c.id]["run"] for c in profile.columns if records[c.id]["run"]}
    if not runs:
        return []
    total = sum(run["wall_seconds"] for run in runs.values())
    devices = sorted({run.get("device", "unknown device") for run in runs.values()})
    missing = [c.label for c in profile.columns if c.label not in runs]
    lines = ["## Wall time", ""]
    wall_time = wall_time_record(figures_dir)
    invocation = json.loads(wall_time.read_text()) if wall_time.exists() else None
    if invocation:
        at_once = invocation["jobs_at_once"]
        lines += [f"The last `reproduce` run took **{invocation['wall_seconds'] / 60:.1f} minutes** of wall time, "
                  f"{at_once} job{'s' * (at_once != 1)} at once (`JOBS={at_once}`), for "
                  f"{', '.join(invocation['runs'])} (notebooks {', '.join(invocation['notebooks'])}), "
                  f"commit {invocation['commit']}, finished {invocation['finished']}.", ""]  # fmt: skip
    per_column = ", ".join(f"{label} {run['wall_seconds'] / 60:.1f}" for label, run in runs.items())
    lines.append(f"Job time: {total / 60:.1f} minutes for the notebooks of {len(runs)} column{'s' * (len(runs) != 1)} "
                 f"in their last runs, on {' and '.join(devices)}: {per_column} min (each job's own time, its "
                 f"training included in 01_train{_job_time_against(invocation)}).")  # fmt: skip
    controls = sum(run.get("notebooks", {}).get("08_metric_controls", {}).get("seconds", 0) for run in runs.values())
    if controls:
        share, extra = controls / total, controls / (total - controls)
        lines += ["", f"Of these, notebook 08 (the metric controls) took {controls / 60:.1f} min, {share:.1%} of the "
                  f"total ({extra:.1%} on top of 01–07)."]  # fmt: skip
    notebooks = {name: sum(run.get("notebooks", {}).get(name, {}).get("seconds", 0) for run in runs.values())
                 for name in dict.fromkeys(n for run in runs.values() for n in run.get("notebooks", {}))}  # fmt: skip
    if notebooks:
        lines += [""]
        lines.append(
            "Per notebook, summed over the columns: "
            + ", ".join(f"{name} {seconds / 60:.1f}" for name, seconds in notebooks.items())
            + " min."
        )
    if missing:
        lines.append(f"Not run yet: {', '.join(missing)}.")
    return [*lines, ""]


def _job_time_against(invocation: dict | None) -> str:
    """How the summed job time relates to the recorded wall time: a little less one job at a time, more side by side."""
    if invocation is None:
        return ""
    if invocation["jobs_at_once"] > 1:
        return "; jobs that ran side by side shared the cores, so this sum exceeds the wall time above"
    return "; the jobs ran one at a time, so this sum is the wall time above less the workflow's own overhead"


def _data_overview(columns, records) -> list[str]:
    """One line per column saying which data its numbers come from, loudly where that is not today's data."""
    copies = {c.label: data_copy(c.dataset, c.train_size, records[c.id]["train"]) for c in columns}
    older = [label for label, (_, current) in copies.items() if not current]
    lines = ["## Data", ""]
    if older and len(older) < len(copies):
        lines += [f"**These results mix data copies**: {', '.join(older)} come from older data than the loader now "
                  "reads, the other columns from the complete data. Compare them with care; rerunning those "
                  "columns remakes them.", ""]  # fmt: skip
    elif older:
        lines += ["**Every column here comes from older data** than the loader now reads; rerunning remakes them.", ""]
    lines += [f"- {label}: {text}" + (" (the complete data)." if current else ".") for label, (text, current) in
              copies.items()]  # fmt: skip
    return [*lines, ""]


def _signed(value: float, digits: int) -> str:
    return f"{value:+.{digits}f}".replace("-", "−")


def _side_by_side(columns, records) -> list[str]:
    lines = ["## Side by side with the paper", "",
             "Ours minus the paper's in the last column. The paper prints accuracy to 4 decimals and AUC to 2, so an "
             "AUC difference under 0.005 is within its rounding.", "",
             "**Table 1: test accuracy**", "", "| column | ours | paper | difference |",
             "|---|---|---|---|"]  # fmt: skip
    for column in columns:
        ours, paper = records[column.id]["train"]["test_accuracy"], PAPER_ACCURACY.get(column.id)
        cells = [f"{paper:.4f}", _signed(ours - paper, 4)] if paper is not None else ["", ""]
        lines.append(f"| {column.label} | {ours:.4f} | " + " | ".join(cells) + " |")
    for fill, title in (("black", "Table 2: black-deletion AUC"), ("white", "Table 3: white-deletion AUC")):
        kinds = ("original", "positive", "active") if fill == "black" else ("original", "negative", "inactive")
        lines += ["", f"**{title}** (test split; the interval is notebook 08's, a paired 95 % bootstrap over its "
                  "subset of test images)", "", "| column | map | ours | paper | difference | 08: AUC [95 % interval] "
                  "| 08: AUC − original's [95 % interval] |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for column in columns:
            curves = records[column.id]["deletion_test"]["curves"]
            controls = records[column.id].get("controls")
            for kind in kinds:
                ours, paper = curves[f"{fill}/{kind}"]["auc"], PAPER_AUC[f"{fill}/{kind}"].get(column.id)
                cells = [f"{paper:.2f}", _signed(ours - paper, 3)] if paper is not None else ["", ""]
                if controls:
                    cells.append(f"{interval_text(controls['intervals'][f'auc paper/{fill}/{kind}'])} "
                                 f"({controls['images']} images)")  # fmt: skip
                    difference = controls["intervals"].get(f"diff {kind}-original/{fill}")
                    cells.append(interval_text(difference) if difference else "")
                else:
                    cells += ["", ""]
                lines.append(f"| {column.label} | {kind} | {ours:.3f} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _directions(columns, records) -> list[str]:
    """Where a map kind's AUC is not below the original's, against the paper's direction, and what could explain it."""
    lines = ["## Where our direction differs from the paper's", ""]
    against = []
    for column in columns:
        curves = records[column.id]["deletion_test"]["curves"]
        for fill, kind in _CLAIMS:
            ours, base = curves[f"{fill}/{kind}"]["auc"], curves[f"{fill}/original"]["auc"]
            if ours >= base:
                against.append((column, fill, kind, ours, base))
    if not against:
        lines.append(
            f"Nowhere: in all {len(columns) * len(_CLAIMS)} comparisons of these {len(columns)} columns, the positive "
            "and active maps' black-deletion AUC and the negative and inactive maps' white-deletion AUC are below "
            "the original map's, as in the paper. The sizes of the gaps differ from the paper's (tables above)."
        )
        return [*lines, ""]
    for column, fill, kind, ours, base in against:
        paper = (PAPER_AUC[f"{fill}/{kind}"].get(column.id), PAPER_AUC[f"{fill}/original"].get(column.id))
        paper_text = f" (paper: {paper[0]:.2f} vs {paper[1]:.2f})" if paper[0] is not None else ""
        lines.append(f"- {column.label}, {fill} deletion: the {kind} map's AUC {ours:.3f} is not below the "
                     f"original's {base:.3f}{paper_text}.")  # fmt: skip
    lines += ["", "What in the set-up could explain it:"]
    for column in dict.fromkeys(c for c, *_ in against):
        train = records[column.id]["train"]
        paper = PAPER_ACCURACY.get(column.id)
        reasons = [f"data: {train['data_source']}, {train['train_images']} training images"]
        if not data_copy(column.dataset, column.train_size, train)[1]:
            reasons.append("older data than the loader now reads (see Data)")
        if paper is not None and train["test_accuracy"] < paper - 0.05:
            reasons.append(f"a weaker model than the paper's (accuracy {train['test_accuracy']:.4f} vs {paper:.4f})")
        if train["test_accuracy"] < 2 / CLASSES:
            reasons.append("a model barely above chance, whose predictions hardly depend on the image")
        lines.append(f"- {column.label}: " + "; ".join(reasons) + ".")
    lines.append(
        "- For every column: the deviations from the authors' code in PROTOCOL §7 (sorted class order, raw maps "
        "before deletion), and, for Imagenette, the offline copy's two rounds of JPEG and its 160 px images upsampled "
        "to 224 px (see `../shared/datasets/README.md`); the data each column used is listed under Data above."
    )
    return [*lines, ""]


def _beyond_section(beyond) -> list[str]:
    lines = [
        "## Beyond the paper: sanity checks, other attribution methods, graded deletion",
        "",
        "Notebooks 06 and 07. The related work (Khakzar et al., `../shared/papers/positive-gradient-sanity-checks.md`;"
        " Adebayo et al. 2018) expects methods that propagate only positive gradient information (Guided "
        "Backpropagation, RectGrad) to ignore the class and to survive the re-initialisation of the model's "
        "weights, and the plain gradient to do neither. The question here is whether the paper's positive and "
        f"active maps behave like the plain gradient or like those. A kind is said to ignore the class when the "
        f"mean Spearman correlation of its highest- and lowest-logit class maps is at least {IGNORES_CLASS}, and to "
        f"survive randomisation when its maps keep a mean Spearman correlation of at least {SURVIVES_RANDOMIZATION}"
        " with the trained model's once every Conv2d and Linear layer is re-initialised (the numbers are in "
        "`tables/tableS_sanity_checks.*`).",
        "",
    ]
    for column, sanity, curves in beyond:
        if not (sanity or curves):
            continue
        lines += [f"### {column.label}", "", *verdict_lines(sanity, curves), ""]
        if sanity:
            lines += [f"Sanity checks on {sanity['images']} test images:", "", *sanity_lines(sanity), ""]
        if curves:
            lines += [f"Best map kind (lowest deletion AUC) per method and fill, on {curves['images']} test images:",
                      "", *beyond_lines(curves), "",
                      "The paper's conjecture that black and white extremes favour positive/negative over "
                      "active/inactive maps, as AUC gaps (negative: the signed map deletes better), from the "
                      "extreme fill to the mildest:", "", *conjecture_lines(curves), ""]  # fmt: skip
    return lines


def _controls_section(controls) -> list[str]:
    lines = ["## Is the gain real? Controls for the deletion metric", "",
             "Notebook 08, PROTOCOL §8. Per claim: whether the interval of the AUC difference (map minus original, "
             "paired 95 % bootstrap over images) lies below 0 (*resolved*); whether the map also beats random "
             "deletion of exactly as many pixels in each image (*count-matched random*, mean of 5 seeds); whether "
             "its SRG = AUC(LeRF) − AUC(MoRF) on full rankings under ROAD's imputation fill is above the "
             "original map's (*survives*); and whether the original map given the sign-aware directed fill "
             "is no longer beaten (*closes the gap*). Every verdict is computed from `results/controls_*.json`; "
             "Table C (`tables/tableC_metric_controls.*`) has every number with its interval.", ""]  # fmt: skip
    for column, record, found in controls:
        if record:
            lines += [f"### {column.label}", "", f"{record['images']} test images, {record['resamples']} resamples, "
                      f"seeds {record['seeds']}.", "", *control_lines(record), *seed_lines(found), ""]  # fmt: skip
    return lines


def seed_lines(records: list[dict]) -> list[str]:
    """The claims across training seeds (``controls.seed_verdicts``), one line each; [] for a single seed."""
    verdicts = seed_verdicts(records)
    if not verdicts:
        return []
    lines = [
        f"- **Across {len(records)} training seeds** (each trained and measured on its own; a claim "
        "*holds* when every seed's bootstrap resolves it and the mean + 2 sd of its difference stays below 0):"
    ]
    for claim, verdict in verdicts.items():
        fill, kind = claim.split("/")
        lines.append(f"  - {fill} deletion, {kind}: AUC({kind}) − AUC(original) {spread_text(verdict['difference'])}, "
                     f"resolved in {verdict['resolved_in']} of {verdict['seeds']}: "
                     + ("holds across seeds." if verdict["holds"] else "**does not hold across seeds**."))  # fmt: skip
    return lines


def missing_figures(figures_dir: str | Path, column) -> list[str]:
    """The figures of the notebooks whose records exist for ``column`` but that are not in ``figures_dir``."""
    figures_dir = Path(figures_dir)
    missing = []
    for kind, stems in FIGURES_BY_RECORD.items():
        if read_record(figures_dir, kind, column.id) is None:
            continue
        for stem in stems:
            name = f"{stem}_{column.id}"
            if not any((figures_dir / f"{name}{suffix}").exists() for suffix in (".png", ".jpg")):
                missing.append(name)
    return missing


def _column_section(column, records, figures_dir) -> list[str]:
    train, test, run = records["train"], records["deletion_test"], records["run"]
    lines = [f"## {column.label}", ""]
    if train is None or test is None:
        return [*lines, "No results for this column yet: it was skipped or has not been run (see the runner's output).",
                ""]  # fmt: skip
    paper = PAPER_ACCURACY.get(column.id)
    copy, current = data_copy(column.dataset, column.train_size, train)
    lines.append(
        f"- Trained {train['epochs']} epochs on {train['train_images']} images "
        f"({train['data_source']}); test accuracy {train['test_accuracy']:.4f} on {train['test_images']} "
        f"images" + (f" (paper: {paper:.4f})." if paper is not None else ".")
    )
    lines.append(f"- Data: {copy}" + (" (the complete data)." if current else "."))
    if train["test_accuracy"] < 2 / CLASSES:
        lines.append(
            f"- **Caution:** test accuracy {train['test_accuracy']:.3f} is less than twice chance "
            f"({1 / CLASSES:.2f}): this model has barely started to learn, its predictions hardly depend on the "
            "image, and its deletion curves say little about the paper's claim either way."
        )
    curves = test["curves"]
    for fill, kind in _CLAIMS:
        base, ours = curves[f"{fill}/original"]["auc"], curves[f"{fill}/{kind}"]["auc"]
        verdict = "lower, as the paper claims" if ours < base else "**not lower: the claim does not hold here**"
        paper_pair = (PAPER_AUC[f"{fill}/{kind}"].get(column.id), PAPER_AUC[f"{fill}/original"].get(column.id))
        paper_text = f"; paper {paper_pair[0]:.2f} vs {paper_pair[1]:.2f}" if paper_pair[0] is not None else ""
        lines.append(
            f"- {fill} deletion, {kind}: AUC {ours:.3f} vs original {base:.3f} on {test['images']} test "
            f"images: {verdict}{paper_text}."
        )
    missing = missing_figures(figures_dir, column)
    if missing:
        lines.append("- Figures of this column not in this folder: " + ", ".join(f"`{m}`" for m in missing)
                     + " (their record is here; rerunning the column remakes them).")  # fmt: skip
    final = {k: curves[k]["deleted"][-1] for k in curves}
    lines.append(
        "- Fraction of pixels actually deleted when 90% is asked: "
        + ", ".join(f"{k} {v:.2f}" for k, v in final.items())
        + " (sparse maps run out of non-zero pixels)."
    )
    if run:
        facts = [f"on {run['device']}"] if "device" in run else []
        facts += [f"{name} {run[key]}" for key, name in (("torch", "torch"), ("signed_saliency", "signed-saliency"),
                                                         ("commit", "commit")) if key in run]  # fmt: skip
        lines.append(f"- Job time of this column's notebooks in the last run: {run['wall_seconds']:.0f} s, "
                     + ", ".join(facts) + ".")  # fmt: skip
        if len(run.get("notebooks", {})) > 1:
            lines.append("- Per notebook: " + ", ".join(f"{name} {entry['seconds']:.0f} s ({entry['device']})"
                                                        for name, entry in run["notebooks"].items()) + ".")  # fmt: skip
    return [*lines, ""]


def finite_in_range(value, low: float, high: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high

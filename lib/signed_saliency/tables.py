"""The paper's Tables 1–3 and our Tables B, S, D and C: numbers from the records in, CSV, Markdown and LaTeX out.

``table_rows`` lays every table out like the paper, from a profile's ``records.Records``: one column per
model × dataset, one row per method, the paper's value beside ours, the epochs and numbers of images
used, and the mean ± sd across training seeds where a column has several. ``assemble`` writes each
table to ``figures/<profile>/tables/`` through one renderer per format (``render_csv``,
``render_markdown``, ``render_latex``). The cell formatting the README shares lives here too:
``interval_text``, ``spread_text`` and ``cell_text``, and the paper's published values.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from signed_saliency.controls import CLAIMS, across_seeds, too_few_text, verdicts
from signed_saliency.io import atomic_write_text
from signed_saliency.profiles import Profile
from signed_saliency.records import Records, load

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
UNDEFINED = "n/a"  # how Markdown and LaTeX show a value that does not exist; CSV leaves the cell empty


def table_rows(profile: Profile, records: Records) -> dict[str, tuple[list[str], list[list]]]:
    """Each table as (header, rows); a column without a record yet shows as empty cells. Where a column has
    records of several training seeds (``Records.seeds``), Tables 1–3 and C add their mean ± sd across seeds."""
    columns = list(profile.columns)
    header = ["row", *[c.label for c in columns]]
    record = {kind: records.of(kind, columns) for kind in ("train", "deletion_test", "deletion_train")}
    seeds = {kind: [records.seeds[c.id][kind] for c in columns] for kind in ("train", "deletion_test", "controls")}
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
    sanity, beyond = records.of("sanity", columns), records.of("beyond", columns)
    sanity_rows, beyond_rows = [], []
    for method, kind in union_keys(sanity, lambda r: [(m, k) for m, v in r["class_sensitivity"].items() for k in v]):
        cells = value(sanity, lambda r, m=method, k=kind: r["class_sensitivity"].get(m, {}).get(k))
        sanity_rows.append([f"{method}/{kind} class sensitivity", *cells])
    for method, kind in union_keys(
        sanity, lambda r: [(m, k) for m, v in r["randomization"].items() for k in v[-1]["spearman"]]
    ):
        sanity_rows.append([f"{method}/{kind} randomised",
                            *value(sanity, lambda r, m=method, k=kind: final_randomization(r, m, k))])  # fmt: skip
    for key in union_keys(beyond, lambda r: list(r["curves"])):
        beyond_rows.append([key, *value(beyond, lambda r, k=key: r["curves"].get(k, {}).get("auc"))])
    controls = records.of("controls", columns)
    control_rows = [[name, *value(controls, lambda r, n=name: interval_text(r["intervals"].get(n)))]
                    for name in union_keys(controls, lambda r: list(r["intervals"]))]  # fmt: skip
    control_rows += [[f"random {name} AUC (mean ± sd over random-map seeds)",
                      *value(controls, lambda r, n=name: spread_text(r["random"].get(n)))]
                     for name in union_keys(controls, lambda r: list(r["random"]))]  # fmt: skip
    control_rows += [
        [
            f"mask leakage {kind} at {float(p):.0%}",
            *value(controls, lambda r, k=kind, q=p: r["leakage"].get(k, {}).get(q)),
        ]
        for kind, p in union_keys(controls, lambda r: [(k, q) for k, v in r["leakage"].items() for q in v])
    ]
    if several:  # the claims' differences: each seed's bootstrap mean, then their mean ± sd across seeds
        control_rows += [[f"{name} (mean ± sd over training seeds)",
                          *spread("controls", lambda r, n=name: r["intervals"][n][0])]
                         for fill, kind in CLAIMS
                         for name in (f"diff {kind}-original/{fill}", f"diff {kind}-matched/{fill}")]  # fmt: skip
    control_rows += [[f"verdict: {kind} below original ({fill} fill)",
                      *value(controls, lambda r, c=f"{fill}/{kind}": claim_word(verdicts(r)[c]))]
                     for fill, kind in CLAIMS if any(controls)]  # fmt: skip
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


def claim_word(verdict: dict) -> str:
    """A claim's verdict (``controls.verdicts``) as Table C says it: resolved or not, or too few images."""
    if verdict["too_few_images"]:
        return too_few_text(verdict["images"])
    return "resolved at 95 %" if verdict["resolved"] else "not resolved at 95 %"


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


def union_keys(found, keys_of) -> list:
    """The union of the keys of every record in ``found`` (None: no record), in first-seen order."""
    return list(dict.fromkeys(k for r in found if r is not None for k in keys_of(r)))


def final_randomization(record: dict, method: str, kind: str) -> float | None:
    """Mean Spearman with the trained maps once every layer is re-initialised (None if not computed)."""
    steps = record["randomization"].get(method)
    return steps[-1]["spearman"].get(kind) if steps else None


def assemble(profile: Profile, figures_dir: str | Path, records: Records | None = None) -> list[Path]:
    """Write every table as CSV, Markdown and LaTeX under ``<figures_dir>/tables``, from ``records`` (read from
    ``figures_dir`` when not given)."""
    records = records or load(profile.columns, figures_dir)
    written = []
    for stem, (header, rows) in table_rows(profile, records).items():
        folder = Path(figures_dir) / "tables"
        written.append(atomic_write_text(folder / f"{stem}.csv", render_csv(header, rows)))
        written.append(atomic_write_text(folder / f"{stem}.md", render_markdown(TABLES[stem], header, rows)))
        written.append(atomic_write_text(folder / f"{stem}.tex", render_latex(TABLES[stem], header, rows)))
    return written


def is_undefined(value) -> bool:
    """No value: not measured (None) or not defined (NaN, e.g. no rank correlation for a constant map)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def cell_text(value, digits: int = 3) -> str:
    if is_undefined(value):
        return UNDEFINED
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _format_row(row, accuracy: bool) -> list[str]:
    # The paper prints accuracy with 4 decimals and AUC with 2: its values are shown as printed.
    digits = 4 if accuracy else 2 if row[0].endswith("(paper)") else 3
    return [row[0], *(cell_text(v, digits) for v in row[1:])]


def render_csv(header, rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(
            [row[0], *("" if is_undefined(v) else (repr(v) if isinstance(v, float) else v) for v in row[1:])]
        )
    return out.getvalue()


def render_markdown(title, header, rows) -> str:
    accuracy = title.startswith("Table 1")
    lines = [f"**{title}**", "", "| | " + " | ".join(header[1:]) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(_format_row(row, accuracy)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def render_latex(title, header, rows) -> str:
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

"""The generated README of a profile's figures: sentences from its records, and nothing else.

``write_summary`` writes ``figures/<profile>/README.md`` from a profile's ``records.Records``: what the
profile changes from the paper, the wall time of the last invocation beside the summed job time, which
data each column's numbers come from, ours beside the paper's cell by cell, where our direction differs
from the paper's and what could explain it, then column by column the verdicts of every notebook
(``verdicts``), the figures whose notebook ran but which are missing, and the files. No number in it is
typed by hand.
"""

from __future__ import annotations

from pathlib import Path

from signed_saliency.controls import CLAIMS, MIN_IMAGES, enough_images, too_few_text
from signed_saliency.data import SOURCE_NAMES, TEST_SPLIT, expected_count
from signed_saliency.findings import findings_lines
from signed_saliency.io import atomic_write_text
from signed_saliency.numerics import summary
from signed_saliency.profiles import Profile
from signed_saliency.records import Records, load, missing_figures
from signed_saliency.tables import PAPER_ACCURACY, PAPER_AUC, interval_text
from signed_saliency.verdicts import (
    CLASSES,
    IGNORES_CLASS,
    SURVIVES_RANDOMIZATION,
    beyond_lines,
    conjecture_lines,
    control_lines,
    precision,
    sanity_lines,
    seed_lines,
    verdict_lines,
)

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


def write_summary(profile: Profile, figures_dir: str | Path, found: Records | None = None) -> Path:
    """``<figures_dir>/README.md``: ours beside the paper's, cell by cell, then column by column, from the records
    (``found``, read from ``figures_dir`` when not given)."""
    figures_dir = Path(figures_dir)
    found = found or load(profile.columns, figures_dir)
    records = found.own
    done = [c for c in profile.columns if records[c.id]["train"] and records[c.id]["deletion_test"]]
    lines = [
        f"# Results of the `{profile.name}` profile",
        "",
        *([profile.caveat, ""] if profile.caveat else []),
        f"Written by `python -m signed_saliency.reproduce --profile {profile.name}`; every number below is read "
        "from `results/*.json`, which the notebooks and the runner wrote. Profile: " + profile.description + ".",
        "",
        "Lower AUC means the map found pixels whose deletion changes the prediction sooner. The paper's claim: "
        "positive and active maps give a lower black-deletion AUC than the original map, and negative and "
        "inactive maps a lower white-deletion AUC.",
        "",
    ]
    lines += findings_lines(profile, records)
    lines += _changes_from_paper(profile)
    lines += _wall_time(profile, found)
    lines += _numerics_section(profile, found)
    if done:
        lines += _data_overview(done, records)
        lines += _side_by_side(done, records)
        lines += _directions(done, records)
    for column in profile.columns:
        lines += _column_section(column, records[column.id], figures_dir)
    beyond = [(c, records[c.id]["sanity"], records[c.id]["beyond"]) for c in profile.columns]
    if any(sanity or curves for _, sanity, curves in beyond):
        lines += _beyond_section(beyond)
    controls = [(c, records[c.id]["controls"], found.seeds[c.id]["controls"]) for c in profile.columns]
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


def _wall_time(profile: Profile, found: Records) -> list[str]:
    """The profile's measured times: the last workflow invocation's wall time (for the runs it ran), then the
    sum of every run's job time in its last run, every training seed's included (the same thing when jobs ran
    one at a time, more when they shared the cores)."""
    invocation = found.wall_time
    per_column = {c.label: found.seeds[c.id]["run"] for c in profile.columns if found.seeds[c.id]["run"]}
    every = [run for runs in per_column.values() for run in runs]
    if not every:
        return []
    total = sum(run["wall_seconds"] for run in every)
    devices = sorted({run.get("device", "unknown device") for run in every})
    missing = [c.label for c in profile.columns if c.label not in per_column]
    lines = ["## Wall time", ""]
    if invocation:
        at_once = invocation["jobs_at_once"]
        ran = invocation["runs"]
        lines += [f"The last `reproduce` run took **{invocation['wall_seconds'] / 60:.1f} minutes** of wall time, "
                  f"{at_once} job{'s' * (at_once != 1)} at once (`JOBS={at_once}`), for "
                  + (f"{', '.join(ran)} (notebooks {', '.join(invocation['notebooks'])})" if ran else
                     "no run: every output was up to date")
                  + f", commit {invocation['commit']}, finished {invocation['finished']}.", ""]  # fmt: skip
        if full := invocation.get("last_complete"):
            lines += [f"The last run of every column before it took **{full['wall_seconds'] / 60:.1f} minutes**, "
                      f"{full['jobs_at_once']} jobs at once, for {', '.join(full['runs'])}, commit {full['commit']}, "
                      f"finished {full['finished']}.", ""]  # fmt: skip

    def column_time(label, runs):
        own = f"{label} {runs[0]['wall_seconds'] / 60:.1f}"
        if len(runs) == 1:
            return own
        return own + f" (+ {len(runs) - 1} more seeds, {sum(r['wall_seconds'] for r in runs[1:]) / 60:.1f})"

    columns = ", ".join(column_time(label, runs) for label, runs in per_column.items())
    counted = f"{len(per_column)} column{'s' * (len(per_column) != 1)}"
    if len(every) > len(per_column):
        counted += f" ({len(every)} runs, every training seed's)"
    untimed = ", ".join(label for label, runs in per_column.items() if runs[0].get("training_untimed"))
    untimed = f", but for {untimed}, whose checkpoint no timed training job of this folder made" if untimed else ""
    lines.append(f"Job time: {total / 60:.1f} minutes for the notebooks of {counted} in their last runs, on "
                 f"{' and '.join(devices)}: {columns} min (each job's own time, its training included in "
                 f"01_train{untimed}{_job_time_against(invocation, len(every))}).")  # fmt: skip
    controls = sum(run.get("notebooks", {}).get("08_metric_controls", {}).get("seconds", 0) for run in every)
    if controls:
        share, extra = controls / total, controls / (total - controls)
        lines += ["", f"Of these, notebook 08 (the metric controls) took {controls / 60:.1f} min, {share:.1%} of the "
                  f"total ({extra:.1%} on top of 01–07)."]  # fmt: skip
    notebooks = {name: sum(run.get("notebooks", {}).get(name, {}).get("seconds", 0) for run in every)
                 for name in dict.fromkeys(n for run in every for n in run.get("notebooks", {}))}  # fmt: skip
    if notebooks:
        each = ", ".join(f"{name} {seconds / 60:.1f}" for name, seconds in notebooks.items())
        lines += ["", f"Per notebook, summed over the runs: {each} min."]
    if missing:
        lines.append(f"Not run yet: {', '.join(missing)}.")
    return [*lines, ""]


def _numerics_section(profile: Profile, found: Records) -> list[str]:
    """Which numerics (``signed_saliency.numerics``) each column's models were trained and its notebooks run
    under, and a warning where they differ; nothing for records from before the numerics were recorded."""
    trained, notebooks = {}, {}
    for column in profile.columns:
        for seed, record in enumerate(found.seeds[column.id]["train"]):
            label = column.label + (f" (seed {seed + 1} of {len(found.seeds[column.id]['train'])})" if seed else "")
            trained.setdefault(summary(record.get("numerics")), []).append(label)
        run = found.own[column.id]["run"] or {}
        for name, entry in run.get("notebooks", {}).items():
            notebooks.setdefault(entry.get("numerics", "not recorded"), []).append(f"{column.label} {name}")
    if set(trained) <= {"not recorded"} and set(notebooks) <= {"not recorded"}:
        return []
    lines = ["## Numerics", ""]
    if len(trained) == 1:
        lines.append(f"Every model here was trained under the same numerics: {next(iter(trained))}.")
    else:
        lines += ["**The models here were trained under different numerics**, so their numbers do not compare to "
                  "the bit (a seed's spread then mixes the machine's effect with the seed's):", ""]  # fmt: skip
        lines += [f"- {numbers}: {', '.join(labels)}" for numbers, labels in trained.items()]
    if len(notebooks) == 1:
        lines.append(f"Every notebook ran under the `{next(iter(notebooks))}` mode.")
    elif notebooks:
        lines += ["", "The notebooks ran under different modes: " + "; ".join(
            f"`{mode}` for {', '.join(labels)}" for mode, labels in notebooks.items()) + "."]  # fmt: skip
    return [*lines, ""]


def _job_time_against(invocation: dict | None, runs: int) -> str:
    """How the summed job time of ``runs`` runs relates to the recorded wall time: a little less one job at a time,
    more side by side, and nothing to compare with where it counts runs that invocation did not run."""
    if invocation is None:
        return ""
    if runs > len(invocation["runs"]):
        return (f"; it counts {runs - len(invocation['runs'])} runs that the last `reproduce` run did not run (other "
                "seeds, earlier runs), so it does not compare with that wall time")  # fmt: skip
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
                    n = controls["images"]
                    cells.append(f"{interval_text(controls['intervals'][f'auc paper/{fill}/{kind}'])} (n = {n})")
                    difference = controls["intervals"].get(f"diff {kind}-original/{fill}")
                    mark = f" ({too_few_text(n)})" if not enough_images(n) else f" (n = {n})"
                    cells.append(interval_text(difference) + mark if difference else "")
                else:
                    cells += ["", ""]
                n = records[column.id]["deletion_test"]["images"]
                lines.append(f"| {column.label} | {kind} | {ours:.3f} (n = {n}) | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _directions(columns, records) -> list[str]:
    """Where a map kind's AUC is not below the original's, against the paper's direction, and what could explain it."""
    lines = ["## Where our direction differs from the paper's", ""]
    against = []
    for column in columns:
        curves = records[column.id]["deletion_test"]["curves"]
        for fill, kind in CLAIMS:
            ours, base = curves[f"{fill}/{kind}"]["auc"], curves[f"{fill}/original"]["auc"]
            if ours >= base:
                against.append((column, fill, kind, ours, base))
    if not against:
        lines.append(
            f"Nowhere: in all {len(columns) * len(CLAIMS)} comparisons of these {len(columns)} columns, the positive "
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
             "original map's (*survives*). Then the *ranking × fill* design: at the map's own pixel counts per image, "
             "the map and the original map's top pixels under four fills (the claim's constant fill; *pixel-sign*, "
             "a pixel's channels to 0 or 1 by the sign of its channel-summed gradient; *channel-sign*, each "
             "pixel-channel by its own gradient's sign; imputation): the *ranking effect* (map − original at the "
             "same count, per fill) and the *fill effects* (pixel-sign − constant, channel-sign − pixel-sign, per "
             "ranking), and which of them carries the gain. A verdict word is given only where the comparison rests "
             "on at "
             f"least {MIN_IMAGES} images; below that the interval stands alone, marked too few to resolve. Every "
             "verdict is computed from `results/controls_*.json`; Table C (`tables/tableC_metric_controls.*`) has "
             "every number with its interval.", ""]  # fmt: skip
    for column, record, found in controls:
        if record:
            lines += [f"### {column.label}", "",
                      f"Precision: the median half-width of its AUC-difference intervals is {precision(record):.3f} "
                      f"(n = {record['images']} test images, {record['resamples']} resamples, random-map seeds "
                      f"{record['seeds']}).", "", *control_lines(record), *seed_lines(found), ""]  # fmt: skip
    return lines


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
    if done := train.get("extended_from"):
        lines.append(f"- Its first {done['epochs']} epochs are the finished run `{done['checkpoint']}` (same settings; "
                     f"no schedule), continued: its training job's time counts epochs {done['epochs'] + 1}-"
                     f"{train['epochs']} only.")  # fmt: skip
    if train["test_accuracy"] < 2 / CLASSES:
        lines.append(
            f"- **Caution:** test accuracy {train['test_accuracy']:.3f} is less than twice chance "
            f"({1 / CLASSES:.2f}): this model has barely started to learn, its predictions hardly depend on the "
            "image, and its deletion curves say little about the paper's claim either way."
        )
    curves = test["curves"]
    for fill, kind in CLAIMS:
        base, ours = curves[f"{fill}/original"]["auc"], curves[f"{fill}/{kind}"]["auc"]
        verdict = "lower, as the paper claims" if ours < base else "**not lower: the claim does not hold here**"
        paper_pair = (PAPER_AUC[f"{fill}/{kind}"].get(column.id), PAPER_AUC[f"{fill}/original"].get(column.id))
        paper_text = f"; paper {paper_pair[0]:.2f} vs {paper_pair[1]:.2f}" if paper_pair[0] is not None else ""
        lines.append(
            f"- {fill} deletion, {kind}: AUC {ours:.3f} vs original {base:.3f} on {test['images']} test "
            f"images: {verdict}{paper_text}."
        )
    missing = missing_figures(figures_dir, column, records)
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

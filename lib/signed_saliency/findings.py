"""What a profile found, said first: the Findings of ``figures/<profile>/README.md`` and ``fig_findings_<profile>``.

Per column and claim, from the ``controls`` records: the AUC difference (map − original) with its paired 95 %
interval and n, the verdict of PROTOCOL §8 (none below 30 images), the paper's difference beside it, and which
effect of the ranking × fill design carries the gain (``carried``); then, in words, where the original map's
curve is not above a random map's (``against_random``). ``findings_lines`` writes the section,
``findings_frame`` the long table that ``plot_findings`` draws as a seaborn forest plot. Nothing here is typed:
every number and word is computed from the records.
"""

from __future__ import annotations

from pathlib import Path

from signed_saliency.controls import CLAIMS, enough_images, too_few_text, verdicts
from signed_saliency.tables import PAPER_AUC, interval_text

FIGURE = "fig_findings_{profile}"


def carried(verdict: dict) -> str | None:
    """Which effect carries a claim's gain, in a word or two (``controls.verdicts``): ``"ranking"`` (it still
    wins when both rankings get the pixel-sign fill), ``"fill"`` (the original ranking gains from the sign-aware
    fill), both, or ``"neither resolved"``; None where the claim is not resolved (no gain to carry) or the record
    has no ranking × fill or too few images."""
    if verdict.get("ranking_given_sign") is None or not verdict["resolved"]:
        return None
    found = [name for name, key in (("ranking", "ranking_given_sign"), ("fill", "sign_fill")) if verdict[key]]
    return " and ".join(found) if found else "neither resolved"


def paper_difference(column_id: str, fill: str, kind: str) -> float | None:
    """The paper's AUC difference (map − original) for a column and claim, from its Tables 2–3; None if absent."""
    ours, original = PAPER_AUC[f"{fill}/{kind}"].get(column_id), PAPER_AUC[f"{fill}/original"].get(column_id)
    return None if ours is None or original is None else round(ours - original, 4)


def against_random(column, controls: dict | None) -> list[str]:
    """Where the original map's curve is not above a random map's (at 95 %, on at least 30 images), in words."""
    if not controls or not enough_images(controls["images"]):
        return []
    lines = []
    for fill in ("black", "white"):
        if fill not in controls.get("random", {}) or f"auc paper/{fill}/original" not in controls["intervals"]:
            continue  # a record without the random-map control has nothing to compare with
        mean, low, high = controls["intervals"][f"auc paper/{fill}/original"]
        random = controls["random"][fill]
        if random["mean"] <= high:
            than = "worse than" if random["mean"] < low else "no better than"
            lines.append(f"{column.label}, {fill} deletion: the original (sign-blind) map is {than} a random map, "
                         f"AUC {mean:.3f} [{low:.3f}, {high:.3f}] against {random['mean']:.3f} ± {random['sd']:.3f} "
                         f"(n = {controls['images']}; random: mean ± sd over {len(controls['seeds'])} "
                         "seeds).")  # fmt: skip
    return lines


def findings_lines(profile, records: dict) -> list[str]:
    """The README's Findings section: a line per column and claim, the random-map sentences, the figure."""
    lines = ["## Findings", "",
             "Per column and claim: AUC(map) − AUC(original) with its paired 95 % bootstrap interval and n (PROTOCOL "
             "§8; no verdict on fewer than 30 images), the paper's difference, and which effect of the ranking × fill "
             "design carries the gain: the *ranking* (the map still beats the original map's top pixels at the same "
             "count when both get the sign-aware pixel fill) or the *fill* (the original ranking gains from that "
             "fill).", ""]  # fmt: skip
    said = False
    for column in profile.columns:
        controls = records[column.id]["controls"]
        if not controls:
            continue
        said = True
        for claim, verdict in verdicts(controls).items():
            fill, kind = claim.split("/")
            n = verdict["images"]
            difference = interval_text(controls["intervals"][f"diff {kind}-original/{fill}"])
            text = f"- {column.label}, {kind} map ({fill}): {difference}"
            if verdict["too_few_images"]:
                text += f": {too_few_text(n)}"
            else:
                text += f", n = {n}: " + ("resolved" if verdict["resolved"] else "**not resolved**")
            paper = paper_difference(column.id, fill, kind)
            text += f"; paper {paper:+.2f}" if paper is not None else ""
            ranking = controls["intervals"].get(f"diff ranking {kind}/{fill}/pixel-sign")
            if ranking is not None:
                fill_effect = controls["intervals"][f"diff fill {kind}/{fill}/original/pixel-sign-constant"]
                text += (f"; ranking effect under the pixel-sign fill {interval_text(ranking)}, fill effect "
                         f"{interval_text(fill_effect)}")  # fmt: skip
                word = carried(verdict)
                text += f": carried by {word}" if word and word != "neither resolved" else (f": {word}" if word else "")
            lines.append(text + ".")
        lines += [f"- {line}" for line in against_random(column, controls)]
    if not said:
        return []
    return [*lines, "", f"![Findings]({FIGURE.format(profile=profile.name)}.png)", ""]


def findings_frame(profile, records: dict):
    """Long table for ``plot_findings``: per column and claim, the paper's difference (a point), ours and the
    ranking and fill effects (each mean, low, high) as rows of ``row``, ``quantity`` and ``value``."""
    import pandas as pd

    rows = []
    for column in profile.columns:
        controls = records[column.id]["controls"]
        if not controls:
            continue
        intervals = controls["intervals"]
        for fill, kind in CLAIMS:
            row = f"{column.label}\n{kind} ({fill}), n = {controls['images']}"
            quantities = {"ours: map − original": intervals[f"diff {kind}-original/{fill}"]}
            paper = paper_difference(column.id, fill, kind)
            if paper is not None:
                quantities["paper: map − original"] = [paper] * 3
            if f"diff ranking {kind}/{fill}/pixel-sign" in intervals:
                quantities["ranking effect (pixel-sign fill)"] = intervals[f"diff ranking {kind}/{fill}/pixel-sign"]
                quantities["fill effect (pixel-sign − constant)"] = intervals[
                    f"diff fill {kind}/{fill}/original/pixel-sign-constant"]  # fmt: skip
            rows += [{"row": row, "quantity": q, "value": v} for q, values in quantities.items() for v in values]
    return pd.DataFrame(rows)


def plot_findings(frame, title: str):
    """A seaborn forest plot of ``findings_frame``: every claim × column, the paper's difference and ours with
    their 95 % intervals, and the ranking and fill effects. Left of 0: the map (or effect) lowers the AUC."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    height = max(3.0, 0.55 * frame["row"].nunique() + 1.2)
    fig, ax = plt.subplots(figsize=(8.5, height), layout="constrained")
    # Each quantity's three numbers (mean, low, high): the median puts the point at the mean and the 100 %
    # percentile interval spans low to high, so seaborn draws exactly the bootstrap interval.
    palette = {
        "paper: map − original": "0.55",
        "ours: map − original": "tab:red",
        "ranking effect (pixel-sign fill)": "tab:purple",
        "fill effect (pixel-sign − constant)": "tab:green",
    }
    present = [q for q in palette if q in set(frame["quantity"])]
    sns.pointplot(frame, x="value", y="row", hue="quantity", hue_order=present, palette=palette, estimator="median",
                  errorbar=("pi", 100), dodge=0.6, linestyle="none", markersize=4, ax=ax)  # fmt: skip
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set(xlabel="AUC difference (left of 0: lower AUC, as the paper claims)", ylabel="")
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8, title=None, loc="best")
    ax.set_title(title, fontsize=10)
    return fig


def write_findings_figure(profile, records: dict, figures_dir: str | Path) -> list[Path]:
    """``fig_findings_<profile>.png`` / ``.pdf`` in ``figures_dir``; nothing where no column has controls."""
    from signed_saliency.plotting import save_figure

    frame = findings_frame(profile, records)
    if frame.empty:
        return []
    title = (f"{profile.name} profile: AUC(map) − AUC(original), ours with 95 % paired bootstrap intervals\n"
             "beside the paper's, and the ranking and fill effects where measured")  # fmt: skip
    return save_figure(plot_findings(frame, title), figures_dir, FIGURE.format(profile=profile.name))

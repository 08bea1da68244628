"""The verdicts in words: what one record says about the paper's claims and the checks beyond it, a line each.

The notebooks print these lines under their numbers, and the generated README (``report``) repeats them
column by column: ``control_lines`` (PROTOCOL §8's controls of the four claims, from a ``controls``
record), ``seed_lines`` (the claims across training seeds), ``sanity_lines`` and ``verdict_lines`` (the
sanity checks and what goes against the related work's expectations), ``beyond_lines`` and
``conjecture_lines`` (the other attribution methods under graded fills). The thresholds of the words
are named here; the numbers themselves come from the record and are formatted as in the tables.
"""

from __future__ import annotations

import statistics

from signed_saliency.attribution import ATTRIBUTIONS, RELU_RULES
from signed_saliency.controls import CLAIMS, seed_verdicts, too_few_text, verdicts
from signed_saliency.decomposition import CELL_FILLS, FILL_STEPS
from signed_saliency.evaluation import BEYOND_FILLS
from signed_saliency.saliency import METHODS
from signed_saliency.tables import cell_text, claim_word, final_randomization, interval_text, is_undefined, spread_text

CLASSES = 10  # both datasets; chance accuracy is 1 / CLASSES
# Thresholds of the verdicts (the numbers themselves are in the tables).
IGNORES_CLASS = 0.9  # mean Spearman(highest-class map, lowest-class map) at or above: the map ignores the class
SURVIVES_RANDOMIZATION = 0.5  # mean Spearman with the trained maps after re-initialising every layer


def _word(verdict, yes: str, no: str) -> str:
    """``": yes"`` or ``": no"``; nothing where the comparison rests on too few images (``None``)."""
    return "" if verdict is None else f": {yes if verdict else no}"


def precision(record: dict) -> float | None:
    """The median half-width of a ``controls`` record's AUC-difference intervals: how finely its n resolves."""
    widths = [(high - low) / 2 for name, (_, low, high) in record["intervals"].items() if name.startswith("diff ")]
    return None if not widths else statistics.median(widths)


def control_lines(record: dict) -> list[str]:
    """The verdicts of PROTOCOL §8 on the paper's four claims, one line each with its n, numbers from a
    ``controls`` record; the verdicts are computed from its intervals now (``controls.verdicts``), so that a
    record written before a rule changed is read under today's rules."""
    intervals, n = record["intervals"], record["images"]
    lines = []
    for claim, verdict in verdicts(record).items():
        fill, kind = claim.split("/")
        parts = [f"AUC({kind}) − AUC(original) {interval_text(intervals[f'diff {kind}-original/{fill}'])}"
                 + _word(verdict["resolved"], "resolved at 95 %", "**not resolved** at 95 %"),
                 f"against count-matched random {interval_text(intervals[f'diff {kind}-matched/{fill}'])}"
                 + _word(verdict["beats_matched_random"], "beats it", "**does not beat it**")]  # fmt: skip
        if f"diff srg {kind}-original/imputation" in intervals:
            gain = interval_text(intervals[f"diff srg {kind}-original/imputation"])
            survives = _word(verdict["survives_imputation_srg"], "survives", "**does not survive**")
            parts.append(f"SRG gain over the original under imputation {gain}{survives}")
        else:
            parts.append("imputation fill not run")
        size = f"{too_few_text(n)}" if verdict["too_few_images"] else f"n = {n}"
        lines.append(f"- {fill} deletion, {kind} ({size}): " + "; ".join(parts) + ".")
        lines.append(f"  - {decomposition_line(record, fill, kind, verdict)}")
    leakage = record.get("leakage", {})
    if leakage:
        best = max(((v, k, p) for k, per in leakage.items() for p, v in per.items()), default=None)
        lines.append(f"- Mask leakage: a small CNN reading only the deletion masks of {record['train_images']} train "
                     f"images names the model's prediction on {record['images']} test images with accuracy up to "
                     f"{best[0]:.3f} ({best[1]} map, {float(best[2]):.0%} deleted); naming the most frequent "
                     f"prediction scores {record.get('leakage_baseline', 1 / CLASSES):.3f}.")  # fmt: skip
    return lines


def carriers(verdict: dict) -> str:
    """Which effects of the ranking × fill design carry a claim's gain, in words, from ``controls.verdicts``."""
    if verdict["too_few_images"]:
        return ""
    if not verdict["resolved"]:
        said = "no resolved gain to carry"
        if verdict["ranking"]:
            said += ("; at matched counts the map's ranking beats the original's under the claim's own fill, so its "
                     "fewer deleted pixels, not its ranking, keep it from beating the original")  # fmt: skip
        return said
    found = [text for key, text in (
        ("ranking_given_sign", "the ranking (it still wins when both rankings get the pixel-sign fill)"),
        ("sign_fill", "the sign-aware fill (the original ranking's AUC drops under the pixel-sign fill)"),
        ("channel_fill", "per-channel granularity (channel-sign below pixel-sign for the original ranking)"),
    ) if verdict[key]]  # fmt: skip
    said = "carried by " + " and ".join(found) if found else "no effect resolved at 95 %"
    if not verdict["ranking"]:
        said += "; at matched counts under the claim's own fill the ranking is **not resolved**"
    return said


def decomposition_line(record: dict, fill: str, kind: str, verdict: dict) -> str:
    """One claim's ranking × fill design (PROTOCOL §8) in a line: the ranking effect under each fill, the
    original ranking's fill effects, and which of them carry the gain (computed, ``carriers``)."""
    intervals = record["intervals"]
    if f"diff ranking {kind}/{fill}/constant" not in intervals:
        return "ranking × fill: not in this record (written before PROTOCOL §8's crossed design; rerun notebook 08)"
    size = too_few_text(verdict["images"]) if verdict["too_few_images"] else f"n = {verdict['images']}"
    cells = [c for c in CELL_FILLS if f"diff ranking {kind}/{fill}/{c}" in intervals]
    ranking = ", ".join(f"{fill if c == 'constant' else c} "
                        f"{interval_text(intervals[f'diff ranking {kind}/{fill}/{c}'])}"
                        for c in cells)  # fmt: skip
    steps = ", ".join(f"{a if a != 'constant' else fill} − {b if b != 'constant' else fill} "
                      f"{interval_text(intervals[f'diff fill {kind}/{fill}/original/{a}-{b}'])}"
                      for a, b in FILL_STEPS)  # fmt: skip
    said = carriers(verdict)
    return (f"ranking × fill ({size}): at the {kind} map's own pixel counts, ranking effect ({kind} − "
            f"count-matched original) under {ranking}; fill effects for the original ranking: {steps}"
            + (f": {said}" if said else "") + ".")  # fmt: skip


def claim_lines(deletion: dict | None, controls: dict | None) -> list[str]:
    """The paper's four claims for one column in a line each: its deletion AUCs against the original's and, where
    notebook 08 ran, the paired interval of the difference with its verdict. What a run prints when it ends."""
    lines = []
    found = verdicts(controls) if controls else {}
    for claim, verdict in (found or dict.fromkeys(f"{f}/{k}" for f, k in CLAIMS)).items():
        fill, kind = claim.split("/")
        text = f"{fill} deletion, {kind} map:"
        if deletion:
            ours, base = deletion["curves"][claim]["auc"], deletion["curves"][f"{fill}/original"]["auc"]
            direction = "lower, as the paper claims" if ours < base else "NOT lower, against the paper"
            text += f" AUC {ours:.3f} vs original {base:.3f} on {deletion['images']} images ({direction})"
        if verdict:
            interval = interval_text(controls["intervals"][f"diff {kind}-original/{fill}"])
            text += f"; difference {interval} on {verdict['images']} images: {claim_word(verdict)}"
        lines.append(text)
    return lines


def seed_lines(records: list[dict]) -> list[str]:
    """The claims across training seeds (``controls.seed_verdicts``), one line each; [] for a single seed."""
    found = seed_verdicts(records)
    if not found:
        return []
    lines = [
        f"- **Across {len(records)} training seeds** (each trained and measured on its own; a claim "
        "*holds* when every seed's bootstrap resolves it and the mean + 2 sd of its difference stays below 0):"
    ]
    for claim, verdict in found.items():
        fill, kind = claim.split("/")
        if verdict["holds"] is None:
            said = f"{too_few_text(verdict['images'])} (the smallest seed's n)."
        else:
            said = (f"resolved in {verdict['resolved_in']} of {verdict['seeds']} (n ≥ {verdict['images']} each): "
                    + ("holds across seeds." if verdict["holds"] else "**does not hold across seeds**."))  # fmt: skip
        lines.append(f"  - {fill} deletion, {kind}: AUC({kind}) − AUC(original) {spread_text(verdict['difference'])}, "
                     + said)  # fmt: skip
    return lines


def _ordered(names, canonical) -> list:
    """``names`` in the order of ``canonical`` (records are written with sorted keys), unknown ones last."""
    rank = {name: i for i, name in enumerate(canonical)}
    return sorted(dict.fromkeys(names), key=lambda name: (rank.get(name, len(rank)), name))


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
        numbers = ", ".join(f"{k} {cell_text(v, 2)}/{cell_text(final_randomization(record, method, k), 2)}"
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
                         f"class sensitivity {cell_text(sensitivity, 2)}, Spearman {cell_text(randomized, 2)}"
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

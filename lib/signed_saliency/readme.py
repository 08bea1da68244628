"""The repository README's generated part: what the committed records say about the paper's four claims.

The top-level ``README.md`` leads with the findings of the ``quick`` profile, between the markers
``<!-- findings:quick -->`` and ``<!-- /findings -->``. ``findings_block`` writes that table from the
committed records (``records.load``): per column, each claim's AUC difference (map − original) with its
paired 95 % interval, its n and the verdict of PROTOCOL §8 with the effect that carries it (ranking or fill,
``findings.carried``), or "too few images" below 30; then, in words,
where the original map's curve is not above a random map's. A test fails
when the README's block is not what the records give; the tables job of ``quick`` (the workflow's last)
rewrites it, as does ``python -m signed_saliency.readme``. A second block, ``<!-- runtime:quick -->``, says how
long ``make reproduce`` took when last run, on which CPU and numerics (``runtime_block``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from signed_saliency import paths
from signed_saliency.controls import CLAIMS, too_few_text, verdicts
from signed_saliency.findings import against_random, carried
from signed_saliency.io import atomic_write_text
from signed_saliency.numerics import summary
from signed_saliency.profiles import get_profile
from signed_saliency.records import last_full_run, load
from signed_saliency.tables import interval_text

PROFILE = "quick"  # the profile whose findings the README leads with
START, END = "<!-- findings:{profile} -->", "<!-- /findings -->"
RUNTIME_START, RUNTIME_END = "<!-- runtime:{profile} -->", "<!-- /runtime -->"


def findings_block(profile: str = PROFILE, figures_dir: str | Path | None = None) -> list[str]:
    """The README's findings table for ``profile``, from its records in ``figures_dir`` (its folder by default)."""
    chosen = get_profile(profile)
    figures = Path(figures_dir) if figures_dir else paths.FIGURES_DIR / profile
    found = load(chosen.columns, figures).own
    claims = [f"{kind} ({fill})" for fill, kind in CLAIMS]
    lines = [f"| `{profile}` column (model accuracy) | " + " | ".join(claims) + " |", "|---" * (len(CLAIMS) + 1) + "|"]
    for column in chosen.columns:
        train, controls = found[column.id]["train"], found[column.id]["controls"]
        if not (train and controls):
            continue
        cells = []
        for claim, verdict in verdicts(controls).items():
            fill, kind = claim.split("/")
            interval = interval_text(controls["intervals"][f"diff {kind}-original/{fill}"])
            if verdict["too_few_images"]:
                cells.append(f"{interval}: {too_few_text(verdict['images'])}")
            else:
                word = carried(verdict)
                cells.append(f"{interval}, n = {verdict['images']}: "
                             + ("**resolved**" if verdict["resolved"] else "not resolved")
                             + (f"; carried by {word}" if word and word != "neither resolved" else ""))  # fmt: skip
        lines.append(f"| {column.label} ({train['test_accuracy']:.3f}) | " + " | ".join(cells) + " |")
    against = [line for column in chosen.columns for line in against_random(column, found[column.id]["controls"])]
    return lines + ([""] + [f"- {line}" for line in against] if against else [])


def runtime_block(profile: str = PROFILE, figures_dir: str | Path | None = None) -> list[str]:
    """How long ``make reproduce`` of ``profile`` took when last run, and where and under which numerics, from
    its wall-time record (``results/workflow.json``) and its run records; one line."""
    chosen = get_profile(profile)
    figures = Path(figures_dir) if figures_dir else paths.FIGURES_DIR / profile
    found = load(chosen.columns, figures)
    wall = found.wall_time
    if not wall:
        return [f"`make reproduce` of `{profile}` has no recorded run yet."]
    machines = sorted({summary((found.own[c.id]["run"] or {}).get("numerics")) for c in chosen.columns})
    machines = [m if m != "not recorded" else "a machine whose numerics were not recorded" for m in machines]
    where = (f"the notebook jobs' numerics and CPU: {'; '.join(machines)}); [`figures/{profile}/README.md`]"
             f"(figures/{profile}/README.md) has each column's and notebook's time.")  # fmt: skip
    full = last_full_run(wall, chosen.columns)
    if full is wall:
        return [f"`make reproduce` (the `{profile}` profile, {', '.join(wall['runs'])}) took "
                f"**{wall['wall_seconds'] / 60:.1f} min** of wall time when last run, {wall['jobs_at_once']} jobs at "
                f"once (finished {wall['finished'][:10]}; {where}"]  # fmt: skip
    rerun = (f"{', '.join(wall['runs']) or 'no run'} alone ran in {wall['wall_seconds'] / 60:.1f} min "
             f"(finished {wall['finished'][:10]})")  # fmt: skip
    if not full:
        return [f"`make reproduce` of `{profile}` has not run in full on record: {rerun} ({where}"]
    return [f"`make reproduce` (the `{profile}` profile, {', '.join(full['runs'])}) took "
            f"**{full['wall_seconds'] / 60:.1f} min** of wall time when last run in full, {full['jobs_at_once']} jobs "
            f"at once (finished {full['finished'][:10]}); since then {rerun}, which that full time predates "
            f"({where}"]  # fmt: skip


def _replace(text: str, start: str, end: str, lines: list[str]) -> str:
    if start not in text or end not in text.split(start, 1)[1]:
        raise ValueError(f"the README has no {start} … {end} block to fill")
    before, rest = text.split(start, 1)
    return before + start + "\n" + "\n".join(lines) + "\n" + end + rest.split(end, 1)[1]


def with_block(text: str, profile: str = PROFILE, figures_dir: str | Path | None = None) -> str:
    """``text`` (a README) with its findings and runtime blocks for ``profile`` replaced by what the records
    give."""
    text = _replace(text, START.format(profile=profile), END, findings_block(profile, figures_dir))
    return _replace(text, RUNTIME_START.format(profile=profile), RUNTIME_END, runtime_block(profile, figures_dir))


def main() -> int:
    readme = paths.REPO_ROOT / "README.md"
    atomic_write_text(readme, with_block(readme.read_text()))
    print(readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())

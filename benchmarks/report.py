"""Results on disk and as a table: one JSON file per device kind, ``results.md`` from all of them.

``python -m benchmarks`` stores what it measured as ``benchmarks/results_<cpu|cuda>.json``
and then rewrites ``benchmarks/results.md`` from every such file, so a GPU run made
elsewhere and a CPU run made here end up side by side. Ratios are speed-ups (their time
over ours) and ours over the floor (1.00 is the floor itself).
"""

from __future__ import annotations

import json
from pathlib import Path

from signed_saliency.io import atomic_write_text

FOLDER = Path(__file__).resolve().parent


def save(results: dict, kind: str, folder: Path = FOLDER) -> Path:
    return atomic_write_text(folder / f"results_{kind}.json", json.dumps(results, indent=1) + "\n")


def render(folder: Path = FOLDER) -> Path:
    """Rewrite ``results.md`` from every ``results_*.json`` in ``folder``."""
    lines = [
        "# Benchmarks",
        "",
        "Written by `python -m benchmarks` (`make bench`) from `results_*.json`; do not edit by hand. Each time is "
        "the median of several runs after a warm-up, all in one process; the ratios count, not the absolute "
        "times. *Speed-up* is their time over ours; *vs floor* is our time over the floor's (1.00 = the floor). "
        "For the gradients, the floor is one forward and one backward per class through it (eager fp32 cannot "
        "do with fewer passes), run with ours' settings; *ours batched* is the class-batched (vmapped) backward "
        "that our GPU path uses. For the deletion curves, the floor is the bare forward passes of the altered "
        "images the curves need, with ours' settings. *Lowering the floor* tables time each setting alone.",
        "",
    ]
    for path in sorted(folder.glob("results_*.json")):
        lines += _section(json.loads(path.read_text()))
    return atomic_write_text(folder / "results.md", "\n".join(lines) + "\n")


def _workspace(row: dict) -> str:
    if "workspace_bytes" not in row:
        return "not measured"
    return f"{row['workspace_bytes'] / 2**20:.1f} MiB per thread × {row['threads']}, at most, whatever the mask"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def _section(r: dict) -> list[str]:
    lines = [f"## {r['device']}", "", f"Machine: {r['machine']}. Measured {r['date']}.", ""]
    if r.get("note"):
        lines += [f"Note: {r['note']}", ""]
    lines += ["### All-class gradients (what active and inactive maps need)", "",
              "| what | batch | ours | theirs | speed-up | floor | vs floor | ours batched | max abs difference |",
              "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in r["gradients"]:
        for name, label in (("loop", "per-class loop (authors')"), ("loop_input_only", "per-class loop, input "
                            "gradient only"), ("captum", "Captum Saliency per class")):  # fmt: skip
            lines.append(f"| {row['what']} vs {label} | {row['batch']} | {_ms(row['ours'])} | {_ms(row[name])} | "
                         f"{row[name] / row['ours']:.2f}× | {_ms(row['floor'])} | {row['ours'] / row['floor']:.2f} | "
                         f"{_ms(row['batched']) if 'batched' in row else 'n/a'} | {row['max_abs_difference']:.1e} "
                         f"(of {row['scale']:.1e}) |")  # fmt: skip
    if r.get("gradient_floor"):
        lines += ["", "### Lowering the gradients' floor (one forward, one input-gradient backward per class)", "",
                  "| what | time | gain | max abs difference from float64 |", "|---|---|---|---|"]  # fmt: skip
        for row in r["gradient_floor"]:
            lines.append(f"| {row['what']} | {_ms(row['seconds'])} | {row['gain']:.2f}× | {row['error']:.1e} "
                         f"(of {row['scale']:.1e}) |")  # fmt: skip
    lines += ["", "### Deletion curves: the six curves of one model, 13 fractions", "",
              "| what | images | ours | Quantus PixelFlipping | speed-up | floor | vs floor | forwards (naive) |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in r["deletion"]:
        lines.append(f"| {row['what']} | {row['batch']} | {_ms(row['ours'])} | {_ms(row['quantus'])} | "
                     f"{row['quantus'] / row['ours']:.2f}× | {_ms(row['floor'])} | {row['ours'] / row['floor']:.2f} | "
                     f"{row['forwards']:,} ({row['forwards_naive']:,}) |")  # fmt: skip
    lines += ["", "### Lowering the deletion floor (bare forward passes of the curves)", "",
              "| what | time | gain | curves identical |", "|---|---|---|---|"]  # fmt: skip
    for row in r["floor"]:
        lines.append(f"| {row['what']} | {_ms(row['seconds'])} | {row['gain']:.2f}× | "
                     f"{'yes' if row['identical'] else '**no**'} |")  # fmt: skip
    if r.get("imputation"):
        lines += ["", "### ROAD's linear imputation (PROTOCOL §8): every non-empty MoRF mask, image × fraction", "",
                  "| what | images × fractions | systems | ours | per system | Quantus, per image | speed-up | "
                  "max abs difference | solver's share of an imputation curve | solver memory |",
                  "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for row in r["imputation"]:
            share = f"{row['solver_share']:.0%}" if "solver_share" in row else "not measured"
            per_system = f"{row['per_system'] * 1000:.2f} ms" if "per_system" in row else "not measured"
            lines.append(f"| {row['what']} | {row['images']} × {row['fractions']} | {row['systems']:,} | "
                         f"{_ms(row['ours'])} | {per_system} | {_ms(row['quantus'])} | "
                         f"{row['quantus'] / row['ours']:.1f}× | {row['max_abs_difference']:.1e} | "
                         f"{share} | {_workspace(row)} |")  # fmt: skip
    t = r["training"]
    lines += ["", "### Training", "", "| what | ours | theirs | speed-up |", "|---|---|---|---|",
              f"| CNN on CIFAR-10, batch {t['batch']}, {t['steps']} steps: images/s (ours: uint8 tensor; theirs: "
              f"DataLoader of PIL images, {t['workers']} workers) | {t['ours']:,.0f} | {t['reference']:,.0f} | "
              f"{t['ours'] / t['reference']:.2f}× |",
              f"| frozen ResNet-18 at {t['frozen_size']}×{t['frozen_size']}, head trained {t['frozen_epochs']} "
              f"epochs on {t['frozen_images']} images (ours: backbone outputs cached; theirs: backbone every epoch) "
              f"| {_ms(t['cached'])} | {_ms(t['through'])} | {t['through'] / t['cached']:.2f}× |",
              "", f"Ours decoded the CIFAR-10 train split once, in {t['load_seconds']:.1f} s (from its cache "
              "when present), before its timed steps; the DataLoader decodes JPEGs in every epoch."]  # fmt: skip
    e = r.get("end_to_end", {})
    if e:
        lines += ["", "### End to end", "", "| profile | wall time | how |", "|---|---|---|"]
        for profile, row in e.items():
            lines.append(f"| `{profile}` | {row['seconds'] / 60:.1f} min | {row['how']} |")
    return [*lines, ""]

"""Figures: map grids like the paper's, deletion curves, training curves, and saving them.

Every function returns a matplotlib ``Figure`` and draws nothing to the screen by itself;
``save_figure`` writes it atomically, to a file name that says what it shows: a plot as PNG and
PDF (vector), a figure of photographs (map grids) as one JPEG at a modest resolution, since a PDF
of hundreds of embedded images is megabytes that every clone carries.
Maps are drawn with one colour map and one colour bar per figure, each map scaled per image
to [0, 1] by ``saliency.scale_for_display`` (display only; the maps stay raw elsewhere).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use(matplotlib.get_backend())  # respects MPLBACKEND=Agg in tests and batch runs
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from signed_saliency.deletion import DeletionCurve  # noqa: E402
from signed_saliency.io import atomic_path  # noqa: E402
from signed_saliency.saliency import scale_for_display  # noqa: E402

CMAP = "inferno"
CURVE_STYLE = {
    "original": {"color": "0.35", "linestyle": "-"},
    "positive": {"color": "tab:red", "linestyle": "-"},
    "negative": {"color": "tab:blue", "linestyle": "-"},
    "active": {"color": "tab:orange", "linestyle": "--"},
    "inactive": {"color": "tab:cyan", "linestyle": "--"},
}


def plot_map_grid(
    images: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    row_labels: Sequence[str] | None = None,
    cmap: str = CMAP,
    title: str = "",
) -> Figure:
    """One row per image: the image, then each map (scaled per image), one shared colour bar; ``title`` should
    name the model and the class the maps explain.

    ``images`` is (B, 3, H, W) in [0, 1]; ``maps`` maps a method name to (B, H, W).
    """
    names = list(maps)
    rows = images.shape[0]
    fig, axes = plt.subplots(rows, len(names) + 1, figsize=(1.6 * (len(names) + 1) + 0.6, 1.6 * rows),
                             squeeze=False, layout="constrained")  # fmt: skip
    shown = None
    for r in range(rows):
        axes[r, 0].imshow(images[r].permute(1, 2, 0).clamp(0, 1).cpu().numpy())
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], fontsize=8)
        for c, name in enumerate(names, start=1):
            shown = axes[r, c].imshow(scale_for_display(maps[name][r]).cpu().numpy(), cmap=cmap, vmin=0, vmax=1)
    for c, title in enumerate(["image", *names]):
        axes[0, c].set_title(title, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(shown, ax=axes[:, 1:], shrink=0.8, label="saliency (scaled per image)")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_deletion_curves(curves: Mapping[str, DeletionCurve], title: str = "", fill: str | None = None) -> Figure:
    """Allegiance against the fraction asked for (left) and the fraction actually deleted (right).

    With ``fill``, only the curves keyed ``"<fill>/<method>"`` are drawn, labelled by method.
    """
    if fill is not None:
        curves = {k.split("/", 1)[1]: c for k, c in curves.items() if k.startswith(f"{fill}/")}
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    for name, curve in curves.items():
        style = CURVE_STYLE.get(name, {})
        left.plot(curve.fractions, curve.allegiance.numpy(), marker="o", ms=3,
                  label=f"{name} (AUC {curve.auc:.3f})", **style)  # fmt: skip
        right.plot(curve.fractions, curve.deleted.numpy(), marker="o", ms=3, label=name, **style)
    right.plot([0, 0.9], [0, 0.9], color="0.8", linewidth=0.8, zorder=0)
    left.set(xlabel="fraction of pixels to delete", ylabel="allegiance", ylim=(-0.02, 1.02), title=title)
    right.set(xlabel="fraction of pixels to delete", ylabel="fraction actually deleted", ylim=(-0.02, 0.92))
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    return fig


def plot_history(history: Sequence[Mapping[str, float]], title: str = "") -> Figure:
    """Training loss and train/test accuracy per epoch, from ``TrainResult.history``."""
    epochs = [h["epoch"] for h in history]
    fig, (loss, accuracy) = plt.subplots(1, 2, figsize=(8, 3), layout="constrained")
    loss.plot(epochs, [h["loss"] for h in history], marker="o", ms=3)
    loss.set(xlabel="epoch", ylabel="training loss", title=title)
    accuracy.plot(epochs, [h["train_accuracy"] for h in history], marker="o", ms=3, label="train")
    accuracy.plot(epochs, [h["test_accuracy"] for h in history], marker="o", ms=3, label="test")
    accuracy.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    accuracy.legend()
    return fig


PLOT_DPI = 100
PICTURE_DPI = 80  # map grids: ~1 MB for the largest (Appendix A, Imagenette, 40 rows) as JPEG q85
PICTURE_QUALITY = 85


def shows_photographs(fig: Figure) -> bool:
    """Whether ``fig`` draws an RGB image (a map grid's input column), not only plots and heatmaps."""
    return any(image.get_array().ndim == 3 for ax in fig.axes for image in ax.get_images())


def save_figure(fig: Figure, directory: str | Path, stem: str, close: bool = True) -> list[Path]:
    """Write ``fig`` atomically and return the paths written.

    A figure of photographs (``shows_photographs``) becomes ``<directory>/<stem>.jpg``
    (JPEG quality 85 at 80 dpi); any other figure ``<stem>.png`` and ``<stem>.pdf`` at 100 dpi.
    """
    pictures = shows_photographs(fig)
    written = []
    for suffix in (".jpg",) if pictures else (".png", ".pdf"):
        target = Path(directory) / f"{stem}{suffix}"
        with atomic_path(target) as tmp:
            # Fixed metadata keeps reruns byte-stable where the backend allows it.
            if suffix == ".jpg":
                fig.savefig(tmp, format="jpeg", dpi=PICTURE_DPI, pil_kwargs={"quality": PICTURE_QUALITY})
            else:
                metadata = {"Software": None} if suffix == ".png" else {"CreationDate": None, "Producer": None}
                fig.savefig(tmp, format=suffix[1:], dpi=PLOT_DPI, metadata=metadata)
        written.append(target)
    if close:
        plt.close(fig)
    return written


def plot_class_sensitivity(sensitivity: Mapping[str, Mapping[str, float | None]], title: str = "") -> Figure:
    """Mean Spearman correlation between the highest- and lowest-class maps, per method (rows) and kind."""
    methods = list(sensitivity)
    kinds = list(next(iter(sensitivity.values()))) if methods else []
    fig, ax = plt.subplots(figsize=(1.2 * len(kinds) + 2.2, 0.45 * len(methods) + 1.2), layout="constrained")
    _annotated_heatmap(ax, [[sensitivity[m][k] for k in kinds] for m in methods], methods, kinds, -1, 1)
    ax.set_title(title or "class sensitivity: Spearman(highest-class map, lowest-class map); 1 = ignores the class",
                 fontsize=9)  # fmt: skip
    return fig


def plot_randomization(randomization: Mapping[str, Sequence[Mapping]], title: str = "") -> Figure:
    """Spearman correlation and SSIM with the trained model's maps as layers are re-initialised, per method.

    A kind whose comparison is undefined at some step (None or NaN: its maps are constant) is left out,
    as the tables leave it out, rather than drawn as a flat line.
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    methods = list(randomization)
    fig, axes = plt.subplots(2, len(methods), figsize=(2.4 * len(methods) + 0.6, 4.8), squeeze=False,
                             sharey="row", layout="constrained")  # fmt: skip
    drawn = set()
    for column, method in enumerate(methods):
        steps = randomization[method]
        layers = [0, *(s["layers"] for s in steps)]
        for row, metric in enumerate(("spearman", "ssim")):
            ax = axes[row, column]
            for kind in CURVE_STYLE:
                values = [1.0, *(s[metric][kind] for s in steps)]  # layer 0: the trained model's own maps
                if any(v is None or v != v for v in values):
                    continue  # undefined (a constant map, e.g. RectGrad's all-zero negative): drawn nowhere
                ax.plot(layers, values, marker="o", ms=3, label=kind, **CURVE_STYLE[kind])
                drawn.add(kind)
            ax.axhline(0, color="0.8", linewidth=0.8, zorder=0)
            ax.set(ylim=(-0.25, 1.05), title=method if row == 0 else "")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # layers are counted, never 2.5
            if row == 1:
                ax.set_xlabel("layers re-initialised\n(from the output)", fontsize=8)
    axes[0, 0].set_ylabel("Spearman with trained\n(lower: passes)")
    axes[1, 0].set_ylabel("SSIM with trained\n(lower: passes)")
    # One legend for the whole figure, of every kind drawn in any panel (a panel may leave one out).
    handles = [Line2D([], [], marker="o", ms=3, label=kind, **CURVE_STYLE[kind]) for kind in CURVE_STYLE
               if kind in drawn]  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_auc_grid(aucs: Mapping[str, Mapping[str, Mapping[str, float]]], title: str = "") -> Figure:
    """One heatmap of deletion AUC per fill: ``aucs[fill][method][kind]``; lower is better."""
    fills = list(aucs)
    columns = min(3, len(fills))
    rows = -(-len(fills) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.2 * rows), squeeze=False, layout="constrained")
    for ax in axes.flat[len(fills) :]:
        ax.set_visible(False)
    for ax, fill in zip(axes.flat, fills):
        methods = list(aucs[fill])
        kinds = list(aucs[fill][methods[0]])
        _annotated_heatmap(ax, [[aucs[fill][m][k] for k in kinds] for m in methods], methods, kinds, 0, 0.9,
                           cmap="viridis_r")  # fmt: skip
        ax.set_title(f"{fill} deletion AUC", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _annotated_heatmap(ax, values, row_labels, column_labels, vmin, vmax, cmap="RdBu_r", digits: int = 2,
                       colour_bar: bool = False) -> None:  # fmt: skip
    """seaborn's annotated heatmap, undefined cells (None or NaN) left blank and marked "n/a"."""
    import numpy as np
    import seaborn as sns

    grid = np.array([[np.nan if v is None else v for v in row] for row in values], dtype=float)
    sns.heatmap(grid, ax=ax, vmin=vmin, vmax=vmax, cmap=cmap, annot=True, fmt=f".{digits}f", cbar=colour_bar,
                annot_kws={"fontsize": 7}, xticklabels=column_labels, yticklabels=row_labels)  # fmt: skip
    for r, c in zip(*np.nonzero(np.isnan(grid))):
        ax.text(c + 0.5, r + 0.5, "n/a", ha="center", va="center", fontsize=7, color="0.4")
    ax.tick_params(axis="x", labelsize=8, labelrotation=30)
    ax.tick_params(axis="y", labelsize=8, labelrotation=0)


def plot_control_curves(
    agreement: Mapping[str, torch.Tensor], fractions: Sequence[float], random: Mapping, title: str = "",
    resamples: int = 2000, seed: int = 0,
) -> Figure:  # fmt: skip
    """The paper's six curves with 95 % bootstrap bands (seaborn, from each image's agreement (F, B) in
    ``agreement["paper/<fill>/<kind>"]``), beside the random-map curve and each sparse map's count-matched
    random curve (``random``, mean over seeds, dotted); the fills' part is ``plot_decomposition``'s."""
    import numpy as np
    import pandas as pd
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True, layout="constrained")
    for ax, fill in zip(axes, ("black", "white")):
        rows = []
        for key, values in agreement.items():
            parts = key.split("/")
            if parts[0] == "paper" and parts[1] == fill:
                label = parts[2]
                rows.append(pd.DataFrame({"fraction": np.repeat(np.asarray(fractions, dtype=float), values.shape[1]),
                                          "allegiance": values.float().flatten().numpy(), "map": label}))  # fmt: skip
        data = pd.concat(rows, ignore_index=True)
        palette = {k: v["color"] for k, v in CURVE_STYLE.items()}
        sns.lineplot(data, x="fraction", y="allegiance", hue="map", ax=ax, errorbar=("ci", 95), n_boot=resamples,
                     seed=seed, palette=palette, marker="o", markersize=3)  # fmt: skip
        # Drawn above the maps' curves: where the random map lies on the original's, it must still show.
        ax.plot(fractions, random[fill]["allegiance"], color="black", linestyle=(0, (1, 1.5)), linewidth=1.6,
                zorder=5, label="random map")  # fmt: skip
        for kind in ("positive", "active") if fill == "black" else ("negative", "inactive"):
            ax.plot(fractions, random[f"matched/{fill}/{kind}"]["allegiance"], linestyle=":", zorder=4,
                    color=CURVE_STYLE[kind]["color"], label=f"random, as many pixels as {kind}")  # fmt: skip
        ax.set(title=f"{fill} deletion (lower curve: the map found pixels that matter)",
               xlabel="fraction of pixels deleted", ylim=(0, 1.02))  # fmt: skip
        ax.title.set_fontsize(9)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("allegiance (95 % bootstrap band)")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_control_grids(record: Mapping, title: str = "") -> Figure:
    """Two annotated heatmaps from a ``controls.summarize`` record: SRG per map kind (rows) and fill, higher
    is better; and mask-leakage accuracy per map kind and fraction, beside what always naming the most
    frequent prediction scores."""
    intervals = record["intervals"]
    kinds = ["original", "positive", "negative", "active", "inactive"]
    fills = [f for f in ("black", "white", "imputation") if f"srg {f}/original" in intervals]
    leakage = record.get("leakage", {})
    fractions = sorted({f for per_kind in leakage.values() for f in per_kind}, key=float)
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.2), layout="constrained")
    _annotated_heatmap(axes[0], [[intervals[f"srg {f}/{k}"][0] for f in fills] for k in kinds], kinds, fills,
                       -0.5, 0.5, digits=3, colour_bar=True)  # fmt: skip
    axes[0].set_title("SRG = AUC(LeRF) − AUC(MoRF), higher is better\n(LeRF: least relevant pixels first; MoRF: "
                      "most relevant first)", fontsize=9)  # fmt: skip
    axes[0].set(xlabel="fill", ylabel="map kind")
    _annotated_heatmap(axes[1], [[leakage.get(k, {}).get(f) for f in fractions] for k in kinds], kinds,
                       [f"{float(f):.0%}" for f in fractions], 0, 1, cmap="magma_r", colour_bar=True)  # fmt: skip
    axes[1].set(xlabel="fraction deleted (MoRF)", ylabel="map kind")
    baseline = record.get("leakage_baseline")
    axes[1].set_title("mask leakage: accuracy naming the prediction from the mask alone, lower is better"
                      + (f"\n(baseline: always the most frequent prediction, {baseline:.2f})"
                         if baseline is not None else ""), fontsize=9)  # fmt: skip
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


SIGNED_RANKING, ORIGINAL_RANKING = "the claim's map", "the original map's top n pixels (n: the claim's map's)"


def plot_decomposition(record: Mapping, title: str = "") -> Figure:
    """The ranking × fill design of each claim (PROTOCOL §8) from a ``controls.summarize`` record: per claim a
    seaborn point plot of the eight AUCs, the signed map and the count-matched original under each fill, with
    their 95 % bootstrap intervals. Lower is better; points of one fill side by side differ by ranking only,
    points of one colour along a panel by fill only."""
    import pandas as pd
    import seaborn as sns

    from signed_saliency.controls import CLAIMS
    from signed_saliency.decomposition import CELL_FILLS, RANKINGS, curve_key

    intervals, rows = record["intervals"], []
    claims = [(f, k) for f, k in CLAIMS if f"auc crossed/{f}/{k}/original/constant" in intervals]
    if not claims:
        raise ValueError("the record has no ranking × fill design: rerun notebook 08 with today's code")
    for fill, kind in claims:
        for ranking in RANKINGS:
            for cell in CELL_FILLS:
                key = "auc " + curve_key(fill, kind, ranking, cell)
                if key not in intervals:
                    continue
                # The interval's three numbers: a median estimator puts the point at the mean and a 100 %
                # percentile interval spans low to high, so seaborn draws exactly the bootstrap interval.
                label = SIGNED_RANKING if ranking == "signed" else ORIGINAL_RANKING
                rows += [{"claim": f"{kind} ({fill})", "fill": fill if cell == "constant" else cell,
                          "ranking": label, "AUC": v} for v in intervals[key]]  # fmt: skip
    data = pd.DataFrame(rows)
    grid = sns.catplot(data, kind="point", x="fill", y="AUC", hue="ranking", col="claim", col_wrap=2,
                       estimator="median", errorbar=("pi", 100), dodge=0.3, height=2.6, aspect=1.5,
                       palette={SIGNED_RANKING: "tab:red", ORIGINAL_RANKING: "0.35"},
                       hue_order=[SIGNED_RANKING, ORIGINAL_RANKING], sharex=False, linestyle="none", markersize=5,
                       legend=False)  # fmt: skip
    grid.set_titles("{col_name}", size=9)
    grid.set_axis_labels("fill (same pixels deleted in every cell)", "AUC, lower is better")
    for ax in grid.axes.flat:
        ax.tick_params(labelsize=8)
    fig = grid.figure
    # Title and legend inside the figure: save_figure keeps the canvas as it is, so nothing may lie above it.
    fig.subplots_adjust(top=0.8)
    fig.suptitle((title + ": " if title else "") + "ranking × fill at matched pixel counts (95 % bootstrap "
                 f"intervals, n = {record['images']})", fontsize=10, y=0.985)  # fmt: skip
    handles = [plt.Line2D([], [], color=c, marker="o", linestyle="none") for c in ("tab:red", "0.35")]
    fig.legend(handles, [SIGNED_RANKING, ORIGINAL_RANKING], loc="upper center", bbox_to_anchor=(0.5, 0.935),
               ncol=2, fontsize=8, frameon=False)  # fmt: skip
    return fig

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
) -> Figure:
    """One row per image: the image, then each map (scaled per image), one shared colour bar.

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
    methods = list(randomization)
    fig, axes = plt.subplots(2, len(methods), figsize=(2.4 * len(methods) + 0.6, 4.8), squeeze=False,
                             sharey="row", layout="constrained")  # fmt: skip
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
            ax.axhline(0, color="0.8", linewidth=0.8, zorder=0)
            ax.set(ylim=(-0.25, 1.05), title=method if row == 0 else "")
            if row == 1:
                ax.set_xlabel("layers re-initialised\n(from the output)", fontsize=8)
    axes[0, 0].set_ylabel("Spearman with trained")
    axes[1, 0].set_ylabel("SSIM with trained")
    axes[0, -1].legend(fontsize=7)
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


def _annotated_heatmap(ax, values, row_labels, column_labels, vmin, vmax, cmap="RdBu_r") -> None:
    import numpy as np

    grid = np.array([[np.nan if v is None else v for v in row] for row in values], dtype=float)
    image = ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    for (r, c), value in np.ndenumerate(grid):
        red, green, blue, _ = image.cmap(image.norm(value)) if not np.isnan(value) else (1, 1, 1, 1)
        dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # white text on dark cells
        ax.text(c, r, "n/a" if np.isnan(value) else f"{value:.2f}", ha="center", va="center", fontsize=7,
                color="white" if dark else "black")  # fmt: skip
    ax.set_xticks(range(len(column_labels)), column_labels, fontsize=8, rotation=30)
    ax.set_yticks(range(len(row_labels)), row_labels, fontsize=8)

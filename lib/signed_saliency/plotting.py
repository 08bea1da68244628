"""Figures: map grids like the paper's, deletion curves, training curves, and saving them.

Every function returns a matplotlib ``Figure`` and draws nothing to the screen by itself;
``save_figure`` writes it as PNG and PDF, atomically, to a file name that says what it shows.
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


def save_figure(fig: Figure, directory: str | Path, stem: str, close: bool = True) -> list[Path]:
    """Write ``<directory>/<stem>.png`` and ``.pdf`` atomically; returns the two paths."""
    written = []
    for suffix in (".png", ".pdf"):
        target = Path(directory) / f"{stem}{suffix}"
        with atomic_path(target) as tmp:
            # Fixed metadata keeps reruns byte-stable where the backend allows it.
            metadata = {"Software": None} if suffix == ".png" else {"CreationDate": None, "Producer": None}
            fig.savefig(tmp, format=suffix[1:], dpi=100, metadata=metadata)
        written.append(target)
    if close:
        plt.close(fig)
    return written

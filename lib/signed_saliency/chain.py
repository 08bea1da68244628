"""What every notebook of the chain does first: parameters in, a column's context out.

A notebook's ``parameters`` cell holds literals only; its next cell calls ``context(...)``
with them and gets a ``Context``: the ``Column``, the folders figures and caches go to
(``figures/<profile>/`` and ``build/<profile>/cache/`` unless given), the device, the
trained model (reused from its checkpoint, trained only if missing), the data splits, and
``save`` for figures named ``<what>_<column id>``. Keeping this here, not in the notebooks,
is what lets the four notebooks stay short stories.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from signed_saliency import paths
from signed_saliency.data import TEST_SPLIT, ImageSet, load_dataset
from signed_saliency.deletion import FRACTIONS, DeletionCurve
from signed_saliency.evaluation import cached, paper_curves, pick_examples
from signed_saliency.plotting import plot_map_grid, save_figure
from signed_saliency.profiles import Column
from signed_saliency.saliency import saliency_maps
from signed_saliency.training import TrainResult, fit, resolve_device


@dataclass
class Context:
    column: Column
    profile: str
    seed: int
    device: torch.device
    figures: Path
    cache: Path

    @cached_property
    def trained(self) -> TrainResult:
        """The column's trained model: reused from its checkpoint, trained if there is none."""
        return fit(self.column.train_config(self.seed), device=self.device)

    @property
    def model(self) -> torch.nn.Module:
        return self.trained.model

    def split(self, which: str, n: int | None = None) -> ImageSet:
        """``"test"`` or ``"train"`` of the column's dataset, a seeded subset of ``n`` images."""
        name = TEST_SPLIT[self.column.dataset] if which == "test" else which
        return load_dataset(self.column.dataset, name).subset(n, self.seed)

    def save(self, fig, what: str) -> list[Path]:
        """Save ``fig`` as ``<figures>/<what>_<column id>.png`` and ``.pdf``."""
        return save_figure(fig, self.figures, f"{what}_{self.column.id}", close=False)

    def example_grid(self, per_class: int, seed: int):
        """A figure of ``per_class`` seeded, correctly classified test images per class with their five maps."""
        test = self.split("test")
        examples = pick_examples(self.model, test, per_class, seed, self.device)
        chosen = examples.index.flatten()
        images = test.batch(chosen, self.device)
        maps = saliency_maps(self.model, images)
        names = test.class_names
        labels = [
            names[label] if ok else f"{names[label]}\n(predicted {names[guess]})"
            for label, ok, guess in zip(test.labels[chosen].tolist(), examples.correct.flatten().tolist(),
                                        examples.predicted.flatten().tolist())
        ]  # fmt: skip
        return plot_map_grid(images.cpu(), {k: v.cpu() for k, v in maps.items()}, row_labels=labels)

    def deletion_curves(self, which: str, n: int | None) -> tuple[dict[str, DeletionCurve], int]:
        """The six paper curves on ``n`` seeded images of a split, cached until the model or sizes change."""
        images = self.split(which, n)
        trained = self.trained
        # The weights' fingerprint too: the same config retrained elsewhere (a GPU) gives other weights.
        key = {"checkpoint": trained.checkpoint.name, "test_accuracy": trained.test_accuracy,
               "final_loss": trained.history[-1]["loss"], "split": which, "images": len(images),
               "seed": self.seed, "fractions": list(FRACTIONS), "source": images.source}  # fmt: skip
        curves = cached(self.cache / f"deletion_{which}_{self.column.id}.pt", key,
                        lambda: paper_curves(self.model, images, device=self.device))  # fmt: skip
        return curves, len(images)


def context(
    *, dataset: str, model: str, pretrained: bool, epochs: int, train_size: int | None, test_size: int | None,
    deletion_images: int | None, appendix_images: int | None, appendix_examples: int, profile: str, seed: int,
    device: str = "auto", figures_dir: str = "", cache_dir: str = "",
) -> Context:  # fmt: skip
    """Build the ``Context`` of one notebook run from its parameters (empty folders = defaults)."""
    column = Column(dataset, model, pretrained, epochs, train_size, test_size, deletion_images, appendix_images,
                    appendix_examples)  # fmt: skip
    figures = Path(figures_dir) if figures_dir else paths.FIGURES_DIR / profile
    cache = Path(cache_dir) if cache_dir else paths.BUILD_DIR / profile / "cache"
    figures.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    return Context(column, profile, seed, resolve_device(device), figures, cache)

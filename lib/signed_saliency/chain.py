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

from signed_saliency import cholesky, paths
from signed_saliency.attribution import RELU_RULES, attribution_maps_for, options_for
from signed_saliency.controls import (
    LEAKAGE_FRACTIONS,
    RESAMPLES,
    SEEDS,
    concatenate,
    control_curves,
    summarize,
)
from signed_saliency.data import TEST_SPLIT, ImageSet, load_dataset
from signed_saliency.deletion import FRACTIONS, DeletionCurve, deletion_masks, predict
from signed_saliency.evaluation import cached, method_curves, paper_curves, pick_examples
from signed_saliency.leakage import mask_leakage
from signed_saliency.plotting import plot_map_grid, save_figure
from signed_saliency.profiles import Column
from signed_saliency.progress import progress
from signed_saliency.saliency import METHODS, saliency_maps, target_gradient
from signed_saliency.sanity import (
    cascading_randomization,
    class_sensitivity,
    finite_mean,
    randomizable_layers,
    randomized_copy,
)
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
        """Save ``fig`` as ``<figures>/<what>_<column id>`` (``.png`` and ``.pdf``, or ``.jpg`` for map grids)."""
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
        title = (f"{self.column.label}: maps of the class the model predicts for each image, "
                 f"{per_class} test image{'s' * (per_class != 1)} per class")  # fmt: skip
        return plot_map_grid(images.cpu(), {k: v.cpu() for k, v in maps.items()}, row_labels=labels, title=title)

    def fingerprint(self, images: ImageSet) -> dict:
        """What a cached result depends on: the weights (their name, accuracy and final loss, since the same
        config retrained elsewhere, on a GPU say, gives other weights), the images and the seed."""
        trained = self.trained
        return {"checkpoint": trained.checkpoint.name, "test_accuracy": trained.test_accuracy,
                "final_loss": trained.history[-1]["loss"], "images": len(images), "seed": self.seed,
                "source": images.source}  # fmt: skip

    def deletion_curves(self, which: str, n: int | None) -> tuple[dict[str, DeletionCurve], int]:
        """The six paper curves on ``n`` seeded images of a split, cached until the model or sizes change."""
        images = self.split(which, n)
        key = {**self.fingerprint(images), "split": which, "fractions": list(FRACTIONS)}
        curves = cached(self.cache / f"deletion_{which}_{self.column.id}.pt", key,
                        lambda: paper_curves(self.model, images, device=self.device))  # fmt: skip
        return curves, len(images)

    def method_curves(self, methods, fills, **options) -> tuple[dict[str, DeletionCurve], int]:
        """Deletion curves of every map kind of ``methods`` under ``fills`` on the column's ``beyond_images``."""
        images = self.split("test", self.column.beyond_images)
        methods = [m for m in methods if self.applies(m)]
        specs = [(m, fill, kind) for m in methods for fill in fills for kind in METHODS]
        key = {**self.fingerprint(images), "specs": specs, "fractions": list(FRACTIONS), "options": options}
        curves = cached(self.cache / f"beyond_{self.column.id}.pt", key,
                        lambda: method_curves(self.model, images, specs, device=self.device, **options))  # fmt: skip
        return curves, len(images)

    def sanity_checks(self, methods, max_steps: int, **options) -> dict:
        """Class sensitivity and cascading randomisation of every map kind of ``methods`` (cached, JSON-ready)."""
        images = self.split("test", self.column.sanity_images)
        key = {**self.fingerprint(images), "methods": list(methods), "max_steps": max_steps, "options": options}

        def compute():
            batch = images.batch(slice(None), self.device)
            result = {"images": len(images), "layers": len(randomizable_layers(self.model)),
                      "not_applicable": {m: self.why_not(m) for m in methods if not self.applies(m)},
                      "class_sensitivity": {}, "randomization": {}}  # fmt: skip
            for method in progress([m for m in methods if self.applies(m)], desc="sanity checks"):
                sensitivity = class_sensitivity(self.model, batch, method, METHODS, **options_for(method, options))
                result["class_sensitivity"][method] = {k: finite_mean(v) for k, v in sensitivity.items()}
                steps = cascading_randomization(self.model, batch, method, METHODS, self.seed, max_steps,
                                                **options_for(method, options))  # fmt: skip
                result["randomization"][method] = [s._asdict() for s in steps]
            return result

        return cached(self.cache / f"sanity_{self.column.id}.pt", key, compute)

    def sanity_example_grids(self, methods, **options):
        """Two figures for one seeded test image, method by method: the maps of the highest vs the lowest
        class, and of the trained vs the fully re-initialised model (as the cascade leaves it)."""
        test = self.split("test")
        chosen = pick_examples(self.model, test, 1, self.seed, self.device).index.flatten()[:1]
        image = test.batch(chosen, self.device)
        predicted = predict(self.model, image)
        randomized = randomized_copy(self.model, seed=self.seed).eval()
        rows = {"class": ([], []), "randomized": ([], [])}
        for method in (m for m in methods if self.applies(m)):
            own = options_for(method, options)
            high, low = attribution_maps_for(self.model, image, method, METHODS, ("highest", "lowest"), **own)
            (after,) = attribution_maps_for(randomized, image, method, METHODS, (predicted,), **own)
            for which, pair, names in (("class", (high, low), ("highest class", "lowest class")),
                                       ("randomized", (high, after), ("trained", "re-initialised"))):  # fmt: skip
                rows[which][0].extend(pair)
                rows[which][1].extend(f"{method}\n{name}" for name in names)

        def grid(maps, labels):
            stacked = {k: torch.cat([m[k] for m in maps]).cpu() for k in METHODS}
            return plot_map_grid(image.cpu().expand(len(maps), -1, -1, -1), stacked, row_labels=labels)

        return grid(*rows["class"]), grid(*rows["randomized"])

    def metric_controls(self, seeds=SEEDS, resamples: int = RESAMPLES) -> tuple[dict, dict[str, torch.Tensor]]:
        """PROTOCOL §8 on the column's ``controls_images`` test images (cached): the ``summarize`` record with
        mask leakage (train masks of as many train images), and each curve's per-image agreement (F, B)."""
        test = self.split("test", self.column.controls_images)
        train = self.split("train", self.column.controls_images)
        key = {**self.fingerprint(test), "fractions": list(FRACTIONS), "seeds": list(seeds), "resamples": resamples,
               "leakage": list(LEAKAGE_FRACTIONS), "train_images": len(train),
               # The solver names its bits: curves imputed by another solver are not reused.
               "imputation": self.column.controls_imputation and cholesky.SOLVER}  # fmt: skip
        chunk = max(1, (1 << 18) // (test.images.shape[-2] * test.images.shape[-1]))

        def masks_and_labels(images: ImageSet, desc: str, each_batch=None):
            """Leakage masks of every map and the model's predictions, chunk by chunk; ``each_batch(batch, maps,
            start)`` adds a split's own work (the test curves) without a second pass over the images."""
            masks, labels = [], []
            for start in progress(range(0, len(images), chunk), desc=desc):
                batch = images.batch(slice(start, start + chunk), self.device)
                maps = saliency_maps(self.model, batch)
                if each_batch is not None:
                    each_batch(batch, maps, start)
                masks.append({k: deletion_masks(v, LEAKAGE_FRACTIONS).cpu() for k, v in maps.items()})
                labels.append(predict(self.model, batch).cpu())
            return {k: torch.cat([m[k] for m in masks], dim=1) for k in METHODS}, torch.cat(labels)

        def compute():
            parts = []

            def test_curves(batch, maps, start):
                _, gradient = target_gradient(self.model, batch, None)
                parts.append(control_curves(self.model, batch, maps, gradient, seeds=seeds, first_image=start,
                                            imputation=self.column.controls_imputation))  # fmt: skip

            test_masks, test_labels = masks_and_labels(test, "metric controls", test_curves)
            train_masks, train_labels = masks_and_labels(train, "train masks for mask leakage")
            curves = concatenate(parts)
            record = summarize(curves, resamples, seed=self.seed)
            record["train_images"] = len(train)
            # The accuracy of always naming the model's most frequent prediction: what leakage must beat.
            record["leakage_baseline"] = float(test_labels.bincount().max()) / len(test_labels)
            record["leakage"] = {
                kind: {
                    str(p): mask_leakage(train_masks[kind][f], train_labels, test_masks[kind][f], test_labels,
                                         len(test.classes), seed=self.seed)
                    for f, p in enumerate(LEAKAGE_FRACTIONS)
                }
                for kind in METHODS
            }  # fmt: skip
            return record, {k: c.agreement for k, c in curves.items() if k.startswith(("paper/", "crossed/"))}

        return cached(self.cache / f"controls_{self.column.id}.pt", key, compute)

    def applies(self, method: str) -> bool:
        return self.why_not(method) is None

    def why_not(self, method: str) -> str | None:
        """Why an attribution method does not apply to this model (ReLU rules need ReLU modules), or None."""
        if method in RELU_RULES and not any(isinstance(m, torch.nn.ReLU) for m in self.model.modules()):
            return f"{method} rewrites the backward pass at ReLU modules, and this model has none"
        return None


def context(
    *, dataset: str, model: str, pretrained: bool, epochs: int, train_size: int | None, test_size: int | None,
    deletion_images: int | None, appendix_images: int | None, appendix_examples: int, profile: str, seed: int,
    sanity_images: int = 256, beyond_images: int = 256, controls_images: int | None = None,
    controls_imputation: bool = True, device: str = "auto",
    figures_dir: str = "", cache_dir: str = "",
) -> Context:  # fmt: skip
    """Build the ``Context`` of one notebook run from its parameters (empty folders = defaults)."""
    column = Column(dataset, model, pretrained, epochs, train_size, test_size, deletion_images, appendix_images,
                    appendix_examples, sanity_images, beyond_images, controls_images, controls_imputation)  # fmt: skip
    figures = Path(figures_dir) if figures_dir else paths.FIGURES_DIR / profile
    cache = Path(cache_dir) if cache_dir else paths.BUILD_DIR / profile / "cache"
    figures.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    return Context(column, profile, seed, resolve_device(device), figures, cache)

"""The explorer's state and computation, without a widget: what ``explorer.Explorer`` shows, testable alone.

``ExplorerState`` loads a finished checkpoint (``finished_checkpoints`` lists them) and a split, picks an
image (by index, the next of a class, or at random among correctly or wrongly classified ones), and
computes what the explorer draws into its ``View``: the prediction, the five maps for a target class and
the deletion preview. Each image's logits and all-class gradients are computed once and kept in a
least-recently-used ``GradientCache`` of at most ``GRADIENT_CACHE_BYTES`` (256 MB: about 40 Imagenette
images at 224×224 or every CIFAR-10 image one visits), so that a new target only re-reduces gradients
and a new deletion setting only reruns one forward pass. Bad choices raise ``ValueError``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from signed_saliency import paths
from signed_saliency.data import TEST_SPLIT, ImageSet, load_dataset
from signed_saliency.deletion import FILLS, deletion_masks
from signed_saliency.io import is_temporary
from signed_saliency.saliency import METHODS, class_gradients, maps_from_gradients
from signed_saliency.training import load_checkpoint

SPLITS = ("test", "train")
TARGETS = ("predicted", "label")  # besides a class index


@dataclass
class View:
    """What the explorer shows now: the image, its maps, and the deletion preview's outcome."""

    index: int = -1
    label: int = -1
    predicted: int = -1
    target: int = -1
    probabilities: torch.Tensor | None = None
    maps: dict[str, torch.Tensor] | None = None
    altered_predicted: int = -1
    altered_probabilities: torch.Tensor | None = None
    deleted_pixels: int = 0


GRADIENT_CACHE_BYTES = 256 << 20


class GradientCache:
    """A least-recently-used cache of (logits, gradients) pairs, bounded by the bytes of its tensors."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.bytes = max_bytes, 0
        self._entries: OrderedDict[tuple, tuple[torch.Tensor, ...]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple):
        if key not in self._entries:
            return None
        self._entries.move_to_end(key)
        return self._entries[key]

    def put(self, key: tuple, value: tuple[torch.Tensor, ...]):
        size = sum(t.numel() * t.element_size() for t in value)
        if key in self._entries:
            self.bytes -= sum(t.numel() * t.element_size() for t in self._entries.pop(key))
        self._entries[key] = value
        self.bytes += size
        while self.bytes > self.max_bytes and len(self._entries) > 1:  # the newest entry always stays
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= sum(t.numel() * t.element_size() for t in evicted)
        return value


def finished_checkpoints(directory: str | Path | None = None) -> list[tuple[str, Path]]:
    """(label, path) of every finished checkpoint, labelled by dataset, model, epochs and accuracy."""
    found = []
    for path in sorted(paths.checkpoints_dir(directory).glob("*.pt")):
        if is_temporary(path):
            continue  # a write that a killed run left behind, never a model to offer
        try:
            state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        except Exception:  # noqa: BLE001 - a foreign or broken file is simply not offered
            continue
        if not isinstance(state, dict) or not state.get("finished"):
            continue
        config = state["config"]
        kind = config["model"] + (" pre-trained" if config["pretrained"] else "")
        size = config["train_size"] or "all"
        epochs = f"{config['epochs']} epoch" + "s" * (config["epochs"] != 1)
        label = f"{config['dataset']} / {kind} · {epochs} on {size} images · test accuracy {state['test_accuracy']:.3f}"
        found.append((config["dataset"], -state["test_accuracy"], label, path))
    # Grouped by dataset, the most accurate first: the default is the best model there is.
    return [(label, path) for _, _, label, path in sorted(found)]


class ExplorerState:
    """The model, split and image the explorer is on, and what it computes for them (see the module)."""

    def __init__(self, data_root: str | Path | None = None, device: str = "cpu", seed: int = 0):
        self.data_root = data_root
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)
        self.view = View()
        self.gradients = GradientCache(GRADIENT_CACHE_BYTES)
        self._datasets: dict[tuple[str, str], ImageSet] = {}
        self.checkpoint: Path | None = None
        self.model = None
        self.dataset: str | None = None
        self.split = "test"
        self.images: ImageSet | None = None

    def load_model(self, checkpoint: str | Path) -> None:
        """Load a finished checkpoint; ``load_split`` follows, since the split's images depend on the dataset."""
        self.model, state = load_checkpoint(checkpoint, self.device)
        self.checkpoint, self.dataset = Path(checkpoint), state["config"]["dataset"]

    def load_split(self, split: str) -> ImageSet:
        """The ``"test"`` or ``"train"`` images of the model's dataset, loaded once per session."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if self.model is None:
            raise ValueError("no model loaded: call load_model(checkpoint) first")
        key = (self.dataset, TEST_SPLIT[self.dataset] if split == "test" else "train")
        if key not in self._datasets:
            self._datasets[key] = load_dataset(*key, self.data_root, download=False)
        self.split, self.images = split, self._datasets[key]
        return self.images

    def _check_index(self, index: int) -> int:
        if not 0 <= index < len(self.images):
            raise ValueError(f"image index {index} is outside this split's 0..{len(self.images) - 1}")
        return int(index)

    def next_of_class(self, label: int, after: int) -> int:
        """The next image after ``after`` (wrapping) whose true label is ``label``."""
        candidates = (self.images.labels == label).nonzero().flatten()
        if not len(candidates):
            raise ValueError(f"no image of this split has label {label}")
        later = candidates[candidates > after]
        return int((later if len(later) else candidates)[0])

    def random_index(self, correct: bool) -> int:
        """A random image the model classifies correctly (or wrongly), drawn from the seeded generator."""
        order = torch.randperm(len(self.images), generator=self.generator)
        # Small batches at 224×224 (8 images), large at 32×32 (256): the first hit usually comes early.
        batch = max(8, (1 << 18) // self.images.images[0, 0].numel())
        for start in range(0, len(order), batch):
            index = order[start : start + batch]
            with torch.inference_mode():
                predictions = self.model(self.images.batch(index, self.device)).argmax(1).cpu()
            hits = index[(predictions == self.images.labels[index]) == correct]
            if len(hits):
                return int(hits[0])
        raise ValueError(f"the model classifies every image of this split {'wrongly' if correct else 'correctly'}")

    def logits_and_gradients(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One image's logits (C,) and all-class input gradients (C, K, H, W), from the cache when there."""
        key = (str(self.checkpoint), self.dataset, self.split, index)
        found = self.gradients.get(key)
        if found is None:
            logits, grads = class_gradients(self.model, self.images.batch(slice(index, index + 1), self.device))
            found = self.gradients.put(key, (logits[0].cpu(), grads[0].cpu()))
        return found

    def show_image(self, index: int) -> None:
        """Move to image ``index``: its true label, probabilities and prediction."""
        index = self._check_index(index)
        logits, _ = self.logits_and_gradients(index)
        self.view.index, self.view.label = index, int(self.images.labels[index])
        self.view.probabilities = logits.softmax(0)
        self.view.predicted = int(logits.argmax())

    def show_maps(self, target: str | int) -> None:
        """The five maps of the current image for ``"predicted"``, ``"label"`` or a class index."""
        if target not in TARGETS and not (isinstance(target, int) and 0 <= target < len(self.images.class_names)):
            raise ValueError(f"target must be one of {TARGETS} or a class index below "
                             f"{len(self.images.class_names)}, got {target!r}")  # fmt: skip
        _, grads = self.logits_and_gradients(self.view.index)
        self.view.target = int({"predicted": self.view.predicted, "label": self.view.label}.get(target, target))
        index = torch.tensor([self.view.target])
        self.view.maps = {
            k: v[0] for k, v in maps_from_gradients(grads[self.view.target][None], METHODS, grads[None], index).items()
        }

    def preview_deletion(self, method: str, fill: str, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Delete ``fraction`` of the current image's pixels by the ``method`` map with the ``fill``: the altered
        image (1, K, H, W) and its mask (H, W); the new prediction and probabilities go to the view."""
        if method not in METHODS or fill not in FILLS:
            raise ValueError(f"method must be one of {METHODS} and fill one of {tuple(FILLS)}, got {method!r}, "
                             f"{fill!r}")  # fmt: skip
        if not 0 <= fraction < 1:
            raise ValueError(f"fraction must be in [0, 1), got {fraction!r}")
        mask = deletion_masks(self.view.maps[method][None], [fraction])[0, 0]
        image = self.images.batch(slice(self.view.index, self.view.index + 1), self.device)
        altered = torch.where(mask.to(self.device), FILLS[fill], image)
        with torch.inference_mode():
            probabilities = self.model.eval()(altered)[0].softmax(0).cpu()
        self.view.altered_predicted = int(probabilities.argmax())
        self.view.altered_probabilities = probabilities
        self.view.deleted_pixels = int(mask.sum())
        return altered, mask

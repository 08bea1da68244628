"""Training with the paper's settings: fit, resume, reuse, and checkpoints.

``fit(TrainConfig(...))`` trains one model on one dataset with AdamW (lr 1e-3), batch 128,
cross-entropy, no augmentation, seed 42 and 50 epochs by default (PROTOCOL §5), from the
uint8 tensors of ``signed_saliency.data``. After every epoch it writes a checkpoint
atomically (``<name>.partial.pt`` until the last epoch, then ``<name>.pt``, so the final file
exists only for a finished run), holding the weights, optimizer state, full config, per-epoch loss and accuracy,
data source and library version. A rerun with the same config reuses a finished checkpoint
and resumes an interrupted one from its last epoch (a longer run resumes from a finished shorter one, whose
epochs are its first ones); the shuffling of epoch e comes from a
generator seeded by (seed, e), so a resumed run ends with the same weights as an
uninterrupted one. Frozen pre-trained backbones are a fixed function: their 1000 logits
are computed once per image and only the head is trained on them, which is exact.
``python -m signed_saliency.training --dataset cifar10 --model cnn`` runs it from a shell.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from signed_saliency import __version__, numerics, paths
from signed_saliency.data import (
    DATASETS,
    GRAYSCALE_MODES,
    TEST_SPLIT,
    ImageSet,
    expected_count,
    load_dataset,
    local_copy,
    to_float,
)
from signed_saliency.io import atomic_torch_save
from signed_saliency.models import MODELS, PretrainedClassifier, build
from signed_saliency.progress import progress as progress_bar

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model; its hash names the checkpoint."""

    dataset: str = "cifar10"
    model: str = "cnn"
    pretrained: bool = False
    epochs: int = 50
    lr: float = 1e-3
    batch_size: int = 128
    seed: int = 42
    train_size: int | None = None  # a seeded subset of the train split; None = all of it
    test_size: int | None = None  # a seeded subset of the test split; None = all of it
    grayscale: str = "drop"

    def __post_init__(self):
        # Every field is checked here, so a bad config fails at once, not epochs later or never.
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}: choose one of {DATASETS}")
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}: choose one of {MODELS}")
        if not isinstance(self.pretrained, bool):
            raise ValueError(f"pretrained must be True or False, got {self.pretrained!r}")
        if self.pretrained and self.model == "cnn":
            raise ValueError("the basic CNN has no pre-trained weights: use pretrained=False")
        for name in ("epochs", "batch_size", "seed", "train_size", "test_size"):
            value = getattr(self, name)
            if value is None and name in ("train_size", "test_size"):
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
            if value < (0 if name == "seed" else 1):
                raise ValueError(f"{name} must be {'non-negative' if name == 'seed' else 'at least 1'}, got {value}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not 0 < self.lr < float("inf"):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.grayscale not in GRAYSCALE_MODES:
            raise ValueError(f"grayscale must be one of {GRAYSCALE_MODES}, got {self.grayscale!r}")

    @property
    def name(self) -> str:
        digest = hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]
        kind = f"{self.model}-pretrained" if self.pretrained else self.model
        size = self.train_size if self.train_size is not None else "all"
        return f"{self.dataset}_{kind}_e{self.epochs}_n{size}_s{self.seed}_{digest}"


@dataclass
class TrainResult:
    """A trained model with its history; ``test_accuracy`` is on the (subset of the) test split."""

    model: nn.Module
    config: TrainConfig
    history: list[dict] = field(default_factory=list)
    test_accuracy: float = float("nan")
    checkpoint: Path | None = None
    data_source: str = ""
    train_images: int = 0
    test_images: int = 0
    reused: bool = False
    resumed_from_epoch: int = 0
    seconds: float = 0.0
    numerics: dict | None = None  # ``numerics.describe()`` of the process that trained it; None before it was kept
    extended_from: dict | None = None  # {"checkpoint", "epochs"}: the finished shorter run its first epochs are


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; anything else is taken as given."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def describe_device(device: str | torch.device = "auto") -> str:
    """The GPU's name for CUDA, else ``cpu: <processor>, <n> logical cores``: what a result record notes."""
    device = resolve_device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type}: {numerics.cpu()['cpu']}, {os.cpu_count()} logical cores"


def checkpoint_path(config: TrainConfig, checkpoint_dir: str | Path | None = None) -> Path:
    return paths.checkpoints_dir(checkpoint_dir) / f"{config.name}.pt"


def fit(
    config: TrainConfig,
    *,
    data_root: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    device: str | torch.device = "auto",
    force: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train (or reuse, or resume) the model described by ``config`` and test it.

    A finished checkpoint with the same config is reused unless ``force``; an unfinished
    one is resumed from its last completed epoch. Returns a ``TrainResult`` whose model is
    in eval mode on ``device``.
    """
    device = resolve_device(device)
    path = checkpoint_path(config, checkpoint_dir)
    partial = _partial(path)
    # The checkpoint file exists only once training has finished (a workflow can treat it as a rule's output);
    # the epochs of an unfinished run are kept beside it, to resume from.
    found = None if force else path if path.exists() else partial if partial.exists() else None
    state = None if found is None else _read_checkpoint(found)
    if state is not None and state.get("config") != asdict(config):
        state = None  # a hash collision or an edited file: never resume someone else's run
    if state is None and not force:
        state = _shorter_finished_run(config, checkpoint_dir, data_root)
    torch.manual_seed(config.seed)
    # ImageNet weights are fetched only for a fresh start: a checkpoint already holds every weight.
    model = build(config.model, pretrained=config.pretrained) if state is None else _architecture(config)
    if state is not None and state["finished"]:
        _check_trained_on_current_data(path, state, config, data_root)
        model.load_state_dict(state["model_state"])
        return TrainResult(model.to(device).eval(), config, state["history"], state["test_accuracy"], path,
                           state["data_source"], state["train_images"], state["test_images"], reused=True,
                           numerics=state.get("numerics"), extended_from=state.get("extended_from"))  # fmt: skip

    numerics.check_active()
    described = numerics.describe()
    if state is not None and state.get("numerics") not in (None, described):
        # A run resumed under other numerics: its weights come from both, and the record must say so.
        described = {**described, "earlier_epochs": state["numerics"].get("earlier_epochs", state["numerics"])}
    started = time.perf_counter()
    train_set = load_dataset(config.dataset, "train", data_root, grayscale=config.grayscale)
    train_set = train_set.subset(config.train_size, config.seed)
    test_set = load_dataset(config.dataset, TEST_SPLIT[config.dataset], data_root, grayscale=config.grayscale)
    test_set = test_set.subset(config.test_size, config.seed)
    model.to(device)
    trainable, train_inputs, test_inputs = _trainable_part(model, train_set, test_set, device)
    optimizer = torch.optim.AdamW(trainable.parameters(), lr=config.lr)
    history: list[dict] = []
    first_epoch, extended_from = 0, None if state is None else state.get("extended_from")
    if state is not None:
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        history, first_epoch = state["history"], state["epoch"]

    train_labels = train_set.labels.to(device)
    test_labels = test_set.labels.to(device)
    epochs = progress_bar(range(first_epoch, config.epochs), initial=first_epoch, total=config.epochs,
                  desc=f"training {config.dataset}/{config.model}", disable=not progress)  # fmt: skip
    for epoch in epochs:
        loss, train_accuracy = _run_epoch(trainable, optimizer, train_inputs, train_labels, config, epoch)
        test_accuracy = _accuracy(trainable, test_inputs, test_labels)
        history.append({"epoch": epoch + 1, "loss": loss, "train_accuracy": train_accuracy,
                        "test_accuracy": test_accuracy})  # fmt: skip
        epochs.set_postfix(loss=f"{loss:.3f}", train=f"{train_accuracy:.3f}", test=f"{test_accuracy:.3f}")
        finished = epoch + 1 == config.epochs
        _save(path if finished else partial, model, optimizer, config, history, epoch + 1, finished, test_accuracy,
              train_set, test_set, device, described, extended_from)  # fmt: skip
    partial.unlink(missing_ok=True)
    model.eval()
    return TrainResult(model, config, history, history[-1]["test_accuracy"], path, train_set.source,
                       len(train_set), len(test_set), resumed_from_epoch=first_epoch, numerics=described,
                       seconds=time.perf_counter() - started, extended_from=extended_from)  # fmt: skip


class DamagedCheckpointError(ValueError):
    """A checkpoint file that cannot be read (truncated, empty) or is not one of this project's."""


def _read_checkpoint(path: Path) -> dict:
    """The checkpoint dict saved by ``fit``; ``DamagedCheckpointError`` naming the file and the fix otherwise."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001 - truncated, empty or foreign bytes: all say the same
        raise DamagedCheckpointError(
            f"{path} is damaged or not a checkpoint ({type(error).__name__}: {str(error).splitlines()[0][:200]}); "
            "retrain with force=True (--force), which replaces it, or delete the file"
        ) from None
    missing = [key for key in ("config", "finished", "model_state", "history") if not isinstance(state, dict)
               or key not in state]  # fmt: skip
    if missing:
        raise DamagedCheckpointError(
            f"{path} is not a checkpoint written by signed_saliency.training (it lacks {', '.join(missing)}); "
            "retrain with force=True (--force), which replaces it, or move the file elsewhere"
        )
    return state


class StaleCheckpointError(ValueError):
    """A finished checkpoint was trained on another copy of the data than the data root now holds."""


def _check_trained_on_current_data(path: Path, state: dict, config: TrainConfig, data_root) -> None:
    """Reuse a finished checkpoint only with the data it was trained on: the same copy (lossless or JPEG
    CIFAR-10, ...) and, where MANIFEST.json tells, as many training images as that copy now gives."""
    copy = local_copy(config.dataset, data_root)
    if copy is None:
        return  # no local copy to compare with: the loader would download the official files
    source, folder = copy
    split_size = expected_count(folder, "train", config.grayscale) if folder else None
    wanted = None if split_size is None else min(split_size, config.train_size or split_size)
    trained_on = (state.get("data_source"), state.get("train_images"))
    if trained_on[0] == source and (wanted is None or trained_on[1] == wanted):
        return
    now = f"{wanted} images of the {source} copy" if wanted is not None else f"the {source} copy"
    raise StaleCheckpointError(
        f"{path} was trained on {trained_on[1]} images of the {trained_on[0]} copy, but the data root "
        f"{paths.data_root(data_root)} now gives {now}. Retrain on the current data with force=True "
        f"(--force; it replaces this checkpoint), or move the file elsewhere to keep it."
    )


def load_checkpoint(path: str | Path, device: str | torch.device = "auto") -> tuple[nn.Module, dict]:
    """The model (eval mode, on ``device``) and the raw checkpoint dict saved by ``fit``.

    Pre-trained models are rebuilt without fetching ImageNet weights: the checkpoint holds them.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: train it first with fit() or make reproduce")
    state = _read_checkpoint(path)
    config = TrainConfig(**state["config"])
    torch.manual_seed(config.seed)
    model = _architecture(config)
    model.load_state_dict(state["model_state"])
    return model.to(resolve_device(device)).eval(), state


def _architecture(config: TrainConfig) -> nn.Module:
    """The model of ``config`` without fetching any weights, to load a checkpoint into."""
    if not config.pretrained:
        return build(config.model)
    import torchvision

    return PretrainedClassifier(getattr(torchvision.models, config.model)(), 10)


def evaluate(model: nn.Module, images: ImageSet, batch_size: int = 512, device: str | torch.device = "auto") -> float:
    """Accuracy of ``model`` on an ``ImageSet``."""
    device = resolve_device(device)
    model.to(device)
    batches = (images.batch(slice(i, i + batch_size), device) for i in range(0, len(images), batch_size))
    return _accuracy(model, batches, images.labels.to(device))


def _trainable_part(model, train_set: ImageSet, test_set: ImageSet, device):
    """The module to train and (lazy) inputs for it: images, or cached backbone features."""
    if isinstance(model, PretrainedClassifier):
        return model.head, _features(model, train_set, device), _features(model, test_set, device)
    train_images = train_set.images.to(device)
    return model, train_images, test_set.images.to(device)


def _features(model: PretrainedClassifier, images: ImageSet, device) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([
            model.features(images.batch(slice(i, i + 256), device)) for i in range(0, len(images), 256)
        ])  # fmt: skip


def _as_input(batch: torch.Tensor) -> torch.Tensor:
    return to_float(batch) if batch.dtype == torch.uint8 else batch


def _run_epoch(module, optimizer, inputs, labels, config: TrainConfig, epoch: int) -> tuple[float, float]:
    module.train()
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    order = torch.randperm(len(labels), generator=generator).to(labels.device)
    # Sums stay on the device: a per-batch .item() would stall a GPU after every step. Float64
    # keeps the sum what Python floats gave on the CPU.
    total_loss = torch.zeros((), dtype=torch.float64, device=labels.device)
    correct = torch.zeros((), dtype=torch.int64, device=labels.device)
    for start in range(0, len(order), config.batch_size):
        index = order[start : start + config.batch_size]
        logits = module(_as_input(inputs[index]))
        loss = nn.functional.cross_entropy(logits, labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += loss.detach().double() * len(index)
        correct += (logits.detach().argmax(1) == labels[index]).sum()
    module.eval()
    return total_loss.item() / len(order), correct.item() / len(order)


def _accuracy(module, inputs, labels, batch_size: int = 512) -> float:
    was_training = module.training
    module.eval()
    with torch.inference_mode():
        batches = inputs
        if isinstance(inputs, torch.Tensor):
            batches = (_as_input(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size))
        predictions = torch.cat([module(batch).argmax(1) for batch in batches])
    module.train(was_training)
    return (predictions == labels).float().mean().item()


def _save(path, model, optimizer, config, history, epoch, finished, test_accuracy, train_set, test_set, device,
          described, extended_from=None):  # fmt: skip
    atomic_torch_save({
        "format": CHECKPOINT_FORMAT,
        "config": asdict(config),
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer_state": optimizer.state_dict(),
        "epoch": epoch,
        "finished": finished,
        "history": history,
        "test_accuracy": test_accuracy,
        "data_source": train_set.source,
        "train_images": len(train_set),
        "test_images": len(test_set),
        "grayscale_count": train_set.grayscale_count,
        "device": str(device),
        "torch_version": torch.__version__,
        "numerics": described,
        "version": __version__,
        **({"extended_from": extended_from} if extended_from else {}),
    }, path)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Train one model on one dataset (PROTOCOL §5) and print its test accuracy."
    )
    parser.add_argument("--dataset", default="cifar10", choices=DATASETS)
    parser.add_argument("--model", default="cnn", choices=MODELS)
    parser.add_argument("--pretrained", action="store_true")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--test-size", type=int, default=None)
    parser.add_argument("--grayscale", default="drop", choices=GRAYSCALE_MODES,
                        help="drop greyscale images (the authors' choice) or convert them to RGB")  # fmt: skip
    parser.add_argument("--device", default="auto", help="auto (CUDA if available, else CPU), cpu, cuda, ...")
    parser.add_argument("--data-root", default=None, help=f"default ${paths.DATA_ENV} or data/")
    parser.add_argument("--checkpoint-dir", default=None, help=f"default ${paths.CHECKPOINTS_ENV} or checkpoints/")
    parser.add_argument("--force", action="store_true", help="retrain even if a finished checkpoint exists")
    args = parser.parse_args(argv)
    try:
        config = TrainConfig(args.dataset, args.model, args.pretrained, args.epochs, args.lr, args.batch_size,
                             args.seed, args.train_size, args.test_size, args.grayscale)  # fmt: skip
    except ValueError as error:
        parser.error(str(error))  # one line and exit status 2, like any other bad flag
    try:
        result = fit(
            config, data_root=args.data_root, checkpoint_dir=args.checkpoint_dir, device=args.device, force=args.force
        )
    except KeyboardInterrupt:
        done = _finished_epochs(config, args.checkpoint_dir)
        print(f"\ninterrupted after epoch {done} of {config.epochs}; rerun the same command to resume",
              file=sys.stderr)  # fmt: skip
        return 130
    except (ValueError, FileNotFoundError) as error:  # bad flags, missing data, damaged checkpoints
        print(f"error: {error}", file=sys.stderr)
        return 2
    how = "reused" if result.reused else f"trained in {result.seconds:.0f} s"
    if result.resumed_from_epoch:
        how += f" (resumed from epoch {result.resumed_from_epoch})"
    print(f"{config.dataset}/{config.model}{' pre-trained' if config.pretrained else ''}: "
          f"test accuracy {result.test_accuracy:.4f} after {config.epochs} epochs, {how}; "
          f"data: {result.data_source or 'from checkpoint'}; checkpoint: {result.checkpoint}")  # fmt: skip
    return 0


def _shorter_finished_run(config: TrainConfig, checkpoint_dir, data_root) -> dict | None:
    """The state of the longest finished run of ``config`` with fewer epochs, if there is one: training has no
    schedule and epoch e's shuffling depends only on (seed, e), so its epochs are the first ones of this run,
    which resumes from it (its file stays)."""
    for epochs in range(config.epochs - 1, 0, -1):
        shorter = replace(config, epochs=epochs)
        path = checkpoint_path(shorter, checkpoint_dir)
        if path.exists():
            state = _read_checkpoint(path)
            if state.get("config") == asdict(shorter) and state["finished"]:
                _check_trained_on_current_data(path, state, shorter, data_root)
                # Unfinished as a run of ``config``; the record says which run its first epochs are.
                return {**state, "finished": False, "extended_from": {"checkpoint": path.name, "epochs": epochs}}
    return None


def _partial(path: Path) -> Path:
    """Where the epochs of an unfinished run of the checkpoint ``path`` are kept."""
    return path.with_name(path.stem + ".partial.pt")


def _finished_epochs(config: TrainConfig, checkpoint_dir) -> int:
    """How many epochs the checkpoint of ``config`` (or its unfinished run) holds (0 when there is none yet)."""
    path = checkpoint_path(config, checkpoint_dir)
    path = path if path.exists() else _partial(path)
    try:
        return int(_read_checkpoint(path)["epoch"]) if path.exists() else 0
    except (DamagedCheckpointError, KeyError):
        return 0


if __name__ == "__main__":
    sys.exit(main())

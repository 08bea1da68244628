"""``python -m benchmarks``: run every comparison on one device and rewrite ``benchmarks/results.md``."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

import torch

from benchmarks import deletion, end_to_end, gradients, imputation, report, training
from benchmarks.timing import machine
from signed_saliency import paths
from signed_saliency.data import load_dataset
from signed_saliency.models import build
from signed_saliency.training import TrainConfig, fit, resolve_device

SECTIONS = ("gradients", "deletion", "imputation", "training", "end_to_end")
# Sizes per device kind: the CPU ones keep `make bench` to minutes on 2 cores.
SIZES = {
    "cpu": {"r18_224_batch": 64, "deletion_224_images": 8, "frozen_images": 64, "frozen_epochs": 3, "steps": 50},
    "cuda": {"r18_224_batch": 64, "deletion_224_images": 64, "frozen_images": 2048, "frozen_epochs": 5, "steps": 200},
}


TRAINED_CNN = "CNN (1 epoch on 5,000 images)"


def _trained_cnn(root: str, device):
    """The CIFAR-10 CNN whose gradient maps give the benchmarks real MoRF masks: one seeded epoch, seconds."""
    return fit(TrainConfig("cifar10", "cnn", epochs=1, train_size=5000), data_root=root, device=device,
               progress=False).model.eval()  # fmt: skip


def run_gradients(device, sizes, args) -> dict:
    return {
        "gradients": [
            gradients.run("cnn", 32, 64, device, args.repeats),
            gradients.run("resnet18", 32, 64, device, args.repeats),
            gradients.run("resnet18", 224, sizes["r18_224_batch"], device, args.repeats),
        ],
        "gradient_floor": [
            *gradients.floor_variants("resnet18", 32, 64, device, args.repeats),
            *gradients.floor_variants("resnet18", 224, sizes["r18_224_batch"], device, args.repeats),
        ],
    }


def run_deletion(device, sizes, args) -> dict:
    root = str(paths.data_root(args.data_root))
    cifar = load_dataset("cifar10", "test", root).subset(256, 0).batch(slice(None), "cpu")
    trained = _trained_cnn(root, device)
    torch.manual_seed(0)
    r18 = build("resnet18").eval()
    imagenette = load_dataset("imagenette", "val", root).subset(sizes["deletion_224_images"], 0).batch(slice(None))
    return {
        "deletion": [
            deletion.run(trained, cifar, f"{TRAINED_CNN}, CIFAR-10", device, args.repeats),
            deletion.run(r18, cifar, "ResNet-18 (random weights), CIFAR-10", device, args.repeats),
            deletion.run(r18, imagenette, "ResNet-18 (random weights), Imagenette 224×224", device, args.repeats),
        ],
        "floor": [*deletion.floor_variants(trained, cifar, "CNN, CIFAR-10", device, args.repeats),
                  *deletion.floor_variants(r18, cifar, "ResNet-18, CIFAR-10", device, args.repeats)],
    }  # fmt: skip


def run_imputation(device, sizes, args) -> dict:
    root = str(paths.data_root(args.data_root))
    cifar = load_dataset("cifar10", "test", root).subset(256, 0).batch(slice(None))
    imagenette = load_dataset("imagenette", "val", root).subset(8, 0).batch(slice(None))
    trained = _trained_cnn(root, device)
    torch.manual_seed(0)
    model = build("cnn").eval().to(device)
    return {"imputation": [
        imputation.run(trained, cifar.to(device), f"{TRAINED_CNN}, CIFAR-10 32×32", args.repeats),
        imputation.run(model, imagenette.to(device), "CNN (random weights), Imagenette 224×224", args.repeats,
                       imputation.FRACTIONS_224),
    ]}  # fmt: skip


def run_training(device, sizes, args) -> dict:
    root = str(paths.data_root(args.data_root))
    ours, load_seconds = training.ours_images_per_second(root, sizes["steps"], 128, device)
    frozen = training.frozen_backbone(sizes["frozen_images"], sizes["frozen_epochs"], 224, device)
    return {"training": {"batch": 128, "steps": sizes["steps"], "workers": os.cpu_count(), "ours": ours,
                         "load_seconds": load_seconds,
                         "reference": training.reference_images_per_second(root, sizes["steps"], 128, device),
                         "frozen_size": 224, "frozen_images": sizes["frozen_images"],
                         "frozen_epochs": sizes["frozen_epochs"], **frozen}}  # fmt: skip


def run_end_to_end(device, sizes, args) -> dict:
    rows = {}
    if not args.no_end_to_end:
        rows["smoke"] = {"seconds": end_to_end.rerun("smoke", str(device)),
                         "how": "rerun now: fresh checkpoints, figures and caches"}  # fmt: skip
    if args.quick:
        rows["quick"] = {"seconds": end_to_end.rerun("quick", str(device)), "how": "rerun now"}
    elif device.type == "cpu" and (quick := end_to_end.recorded("quick")):
        how = f"sum of the run records of the last `make reproduce` (figures/quick/results), on {', '.join(quick[1])}"
        rows["quick"] = {"seconds": quick[0], "how": how}
    return {"end_to_end": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the library against the usual alternatives.")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available, else CPU), cpu, cuda")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure (the median is kept)")
    parser.add_argument("--data-root", default=None, help=f"default ${paths.DATA_ENV} or data/")
    parser.add_argument("--quick", action="store_true", help="also rerun the quick profile end to end (~1 h here)")
    parser.add_argument("--no-end-to-end", action="store_true", help="skip the smoke profile's end-to-end run")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, default=None,
                        help="rerun only these sections, keeping the others from the stored results")  # fmt: skip
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    sizes = SIZES[device.type if device.type in SIZES else "cpu"]
    stored = report.FOLDER / f"results_{device.type}.json"
    results = json.loads(stored.read_text()) if args.only and stored.exists() else {}
    results.update({"device": "CUDA" if device.type == "cuda" else "CPU", "machine": machine(device),
                    "date": datetime.date.today().isoformat()})  # fmt: skip
    runners = {"gradients": run_gradients, "deletion": run_deletion, "imputation": run_imputation,
               "training": run_training, "end_to_end": run_end_to_end}  # fmt: skip
    for section in args.only or SECTIONS:
        print(f"benchmarking {section.replace('_', ' ')} on {device}", file=sys.stderr)
        results.update(runners[section](device, sizes, args))
    report.save(results, device.type)
    print(f"wrote {stored}", file=sys.stderr)
    print(report.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())

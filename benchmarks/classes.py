"""What the class count costs: time of all five maps for 10, 100 and 1000 classes, and peak memory at 224×224.

``python -m benchmarks.classes`` prints a Markdown table (the README's "Any number of classes"
quotes it). Active and inactive maps need one backward pass per class, so their time grows with
the class count; ``competitors=k`` caps it at k + 1 passes. The memory row runs 12 images at
224×224 through a 1000-class head in a fresh process and reads its peak resident memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import torch
import torchvision

from signed_saliency import saliency_maps

MEMORY_SCRIPT = """
import json, resource, torch
from torch import nn
from signed_saliency import saliency_maps
torch.manual_seed(0)
# A small convolutional stem and a 1000-class head: the gradients (B, C, 3, 224, 224) dominate memory, as they
# would for any backbone; the chunking is what is measured.
model = nn.Sequential(nn.Conv2d(3, 16, 7, stride=4, padding=3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                      nn.Linear(16, 1000)).eval()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
maps = saliency_maps(model, torch.rand(12, 3, 224, 224), progress=False)
print(json.dumps({"before_kib": before, "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def time_maps(classes: int, size: int = 64, images: int = 4, competitors: int | None = None) -> float:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=classes).eval()
    batch = torch.rand(images, 3, size, size)
    saliency_maps(model, batch[:1], progress=False)  # warm-up
    start = time.perf_counter()
    saliency_maps(model, batch, competitors=competitors, progress=False)
    return time.perf_counter() - start


def main() -> int:
    rows = [(c, None, time_maps(c)) for c in (10, 100, 1000)] + [(1000, 10, time_maps(1000, competitors=10))]
    print("| classes | compared with | all five maps, 4 images at 64×64, ResNet-18 (s) |")
    print("|---|---|---|")
    for classes, competitors, seconds in rows:
        compared = (
            f"the top {competitors} (`competitors={competitors}`)" if competitors else f"all {classes - 1} others"
        )
        print(f"| {classes} | {compared} | {seconds:.2f} |")
    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True, check=True)
    memory = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\nPeak resident memory, 12 images at 224×224, 1000 classes: {memory['peak_kib'] / 2**20:.2f} GiB "
          f"({memory['before_kib'] / 2**20:.2f} GiB before the call).")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Installed from its wheel, outside a checkout, the library computes the same maps and keeps its files per user."""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import torch

from signed_saliency import deletion_curve, paths, saliency_maps
from signed_saliency.models import BasicCNN

SCRIPT = """
import json, sys, torch
import signed_saliency
from signed_saliency import deletion_curve, paths, saliency_maps
from signed_saliency.data import DataNotFoundError, load_dataset
from signed_saliency.models import BasicCNN
torch.manual_seed(0)
model, images = BasicCNN().eval(), torch.rand(3, 3, 32, 32)
maps = saliency_maps(model, images)
curve = deletion_curve(model, images, maps["positive"], "black")
torch.save({"maps": dict(maps), "auc": curve.auc}, sys.argv[1])
try:
    load_dataset("cifar10", "test", download=False)
    message = ""
except DataNotFoundError as error:
    message = str(error)
print(json.dumps({"file": signed_saliency.__file__, "in_checkout": paths.in_checkout(),
                  "data": str(paths.data_root()), "checkpoints": str(paths.checkpoints_dir()), "message": message}))
"""


def test_the_wheel_installed_elsewhere_computes_the_maps_and_uses_a_per_user_folder(tmp_path):
    dist, env, home, elsewhere = (tmp_path / name for name in ("dist", "env", "home", "elsewhere"))
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(paths.REPO_ROOT), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(dist)], check=True, capture_output=True)  # fmt: skip
    (wheel,) = dist.glob("signed_saliency-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True)  # fmt: skip
    # The dependencies (torch, numpy, ...) come from this environment's site-packages, not its checkout.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SIGNED_SALIENCY_") and k != "XDG_DATA_HOME"}
    run_env = {**clean, "HOME": str(home), "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    result = subprocess.run([str(python), "-c", SCRIPT, str(tmp_path / "out.pt")], cwd=elsewhere, env=run_env,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert str(env) in report["file"] and str(paths.REPO_ROOT) not in report["file"]
    user = home / ".local" / "share" / "signed-saliency"
    assert not report["in_checkout"]
    assert report["data"] == str(user / "data") and report["checkpoints"] == str(user / "checkpoints")
    assert str(user / "data") in report["message"] and "per-user folder" in report["message"]
    torch.manual_seed(0)
    model, images = BasicCNN().eval(), torch.rand(3, 3, 32, 32)
    ours = saliency_maps(model, images)
    installed = torch.load(tmp_path / "out.pt")
    assert all(torch.equal(installed["maps"][k], ours[k]) for k in ours)
    assert installed["auc"] == deletion_curve(model, images, ours["positive"], "black").auc
    assert not list(Path(sysconfig.get_paths()["purelib"]).glob("checkpoints"))  # nothing lands beside site-packages

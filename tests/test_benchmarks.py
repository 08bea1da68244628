"""The benchmark code on tiny inputs, so that it cannot rot: every comparison runs and agrees.

No timing is asserted (this machine's timings vary); what is checked is that each
implementation computes the same thing as ours where it should, and that the report holds
every row.
"""

import json

import pytest
import torch

from benchmarks import deletion, gradients, imputation, report, training
from signed_saliency import saliency
from signed_saliency.deletion import FRACTIONS
from signed_saliency.models import BasicCNN
from signed_saliency.saliency import class_gradients


def test_all_class_gradients_agree_across_implementations():
    row = gradients.run("cnn", 32, 2, "cpu", repeats=1)
    assert row["max_abs_difference"] < 1e-5 * max(row["scale"], 1)
    assert all(row[k] > 0 for k in ("ours", "loop", "loop_input_only", "captum", "floor", "batched"))
    torch.manual_seed(0)
    model, images = BasicCNN().eval(), torch.rand(2, 3, 32, 32)
    expected = class_gradients(model, images)[1]
    for function in (
        gradients.per_class_loop,
        gradients.per_class_loop_input_only,
        gradients.captum_per_class,
        gradients.one_forward_c_backwards,
    ):
        torch.testing.assert_close(function(model, images), expected, rtol=1e-5, atol=1e-6)


def test_deletion_row_counts_the_forwards_our_curves_need():
    torch.manual_seed(0)
    model, images = BasicCNN().eval(), torch.rand(3, 3, 32, 32)
    row = deletion.run(model, images, "tiny", "cpu", repeats=1)
    assert row["forwards_naive"] == 3 * 6 * 13
    assert 3 < row["forwards"] <= 3 + 3 * 6 * 12  # the originals once, then only new deletion sets
    assert all(row[k] > 0 for k in ("ours", "quantus", "floor"))


def test_quantus_pixel_flipping_is_configured_with_our_fills():
    # After its 12th step Quantus has replaced every pixel-channel by the baseline: the image is all 0.0 (black)
    # or all 1.0 (white), and its score is the predicted class's softmax probability on that image.
    torch.manual_seed(0)
    model, images = BasicCNN().eval(), torch.rand(2, 3, 32, 32)
    maps = {m: torch.rand(2, 32, 32) for m in ("original", "positive", "negative", "active", "inactive")}
    curves = deletion.quantus_curves(model, images, maps, "cpu")
    assert set(curves) == {"black/original", "black/positive", "black/active", "white/original", "white/negative",
                           "white/inactive"}  # fmt: skip
    predicted = model(images).argmax(1)
    with torch.no_grad():
        for fill, value in (("black", 0.0), ("white", 1.0)):
            scores = torch.tensor(curves[f"{fill}/original"])
            assert scores.shape == (2, 12)
            expected = model(torch.full_like(images, value)).softmax(1)[torch.arange(2), predicted]
            torch.testing.assert_close(scores[:, -1], expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="cannot take 12 equal steps"):
        deletion.quantus_curves(model, torch.rand(1, 3, 5, 5), {m: torch.rand(1, 5, 5) for m in maps}, "cpu")


def test_floor_variants_report_a_gain_and_whether_curves_stay_identical():
    torch.manual_seed(0)
    rows = deletion.floor_variants(BasicCNN().eval(), torch.rand(2, 3, 32, 32), "tiny", "cpu", repeats=1)
    assert [r["what"].split(",")[0].split(" ")[0] for r in rows] == ["floor", "inference_mode", "channels-last",
                                                                       "originals", "bfloat16"]  # fmt: skip
    assert all(r["seconds"] > 0 and r["gain"] > 0 and isinstance(r["identical"], bool) for r in rows)


def test_gradient_floor_variants_time_each_setting_and_stay_close_to_float64(monkeypatch):
    monkeypatch.setattr(saliency, "forward_batch", lambda images: 2)
    rows = gradients.floor_variants("resnet18", 32, 3, "cpu", repeats=1, checked=2)
    assert [r["what"].split(":")[0].removeprefix("floor, ").removeprefix("chunks of 2 images, ") for r in rows] == [
        "resnet18 32×32, batch 3", "chunks of 2 images", "BatchNorm's backward as a per-channel multiply",
        "lean BatchNorm, stem's input gradient by PyTorch's transposed convolution (ours)",
        "lean BatchNorm and stem, channels-last", "BatchNorm folded into the convolutions",
        "BatchNorm folded, channels-last, lean stem (ours with fused=True)"]  # fmt: skip
    assert rows[0]["gain"] == 1.0 and all(r["seconds"] > 0 and r["gain"] > 0 for r in rows)
    assert all(0 <= r["error"] < 1e-5 * r["scale"] for r in rows), rows
    assert rows[2]["error"] == rows[1]["error"]  # the lean BatchNorm backward changes no bit
    whole = gradients.floor_variants("resnet18", 32, 2, "cpu", repeats=1, checked=1)
    assert len(whole) == 6 and whole[1]["what"].startswith("whole batch, BatchNorm's backward")


@pytest.mark.data
def test_training_throughput_and_frozen_backbone(data_root):
    ours, load_seconds = training.ours_images_per_second(data_root, steps=2, batch=8, device="cpu")
    reference = training.reference_images_per_second(data_root, steps=2, batch=8, device="cpu")
    assert ours > 0 and reference > 0 and load_seconds >= 0
    frozen = training.frozen_backbone(images=4, epochs=2, size=64, device="cpu", batch=2)
    assert frozen["cached"] > 0 and frozen["through"] > 0


def test_report_renders_every_row(tmp_path):
    grad = {"what": "all-class gradients, cnn 32×32", "batch": 64, "ours": 0.1, "loop": 0.2, "captum": 0.25,
            "loop_input_only": 0.15, "batched": 0.12,
            "floor": 0.09, "max_abs_difference": 1e-7, "scale": 0.5}  # fmt: skip
    dele = {"what": "six deletion curves, x", "batch": 256, "ours": 1.0, "quantus": 3.0, "floor": 0.9,
            "forwards": 1000, "forwards_naive": 19968}  # fmt: skip
    results = {"device": "CPU", "machine": "m", "date": "2026-11-22", "gradients": [grad], "deletion": [dele],
               "floor": [{"what": "bfloat16 autocast", "seconds": 0.5, "gain": 1.8, "identical": False}],
               "gradient_floor": [{"what": "chunks, channels-last", "seconds": 2.0, "gain": 1.25, "error": 1e-4,
                                   "scale": 2e-3}],
               "training": {"batch": 128, "steps": 50, "workers": 2, "ours": 3000.0, "reference": 1000.0,
                            "load_seconds": 1.4, "frozen_size": 224, "frozen_images": 64, "frozen_epochs": 3,
                            "cached": 2.0, "through": 6.0},
               "imputation": [{"what": "CNN, CIFAR-10", "images": 256, "fractions": 13, "systems": 3072, "ours": 3.6,
                               "quantus": 14.4, "max_abs_difference": 4e-6},
                              {"what": "CNN, 224", "images": 8, "fractions": 6, "systems": 48, "ours": 4.8,
                               "quantus": 48.0, "max_abs_difference": 1e-9, "per_system": 0.1, "forward": 0.2,
                               "solver_share": 0.96}],
               "end_to_end": {"smoke": {"seconds": 198.0, "how": "rerun now"}}, "note": "an older run."}  # fmt: skip
    report.save(results, "cpu", tmp_path)
    assert json.loads((tmp_path / "results_cpu.json").read_text()) == results
    text = report.render(tmp_path).read_text()
    row = "| all-class gradients, cnn 32×32 vs per-class loop (authors') | 64 | 100 ms | 200 ms | 2.00× | 90.0 ms |"
    assert row in text
    assert "| six deletion curves, x | 256 | 1,000 ms | 3,000 ms | 3.00× | 900 ms | 1.11 | 1,000 (19,968) |" in text
    assert "| bfloat16 autocast | 500 ms | 1.80× | **no** |" in text
    assert "| chunks, channels-last | 2,000 ms | 1.25× | 1.0e-04 (of 2.0e-03) |" in text
    assert "| 3,000 | 1,000 | 3.00× |" in text and "| 2,000 ms | 6,000 ms | 3.00× |" in text
    assert "| `smoke` | 3.3 min | rerun now |" in text and "Note: an older run." in text
    assert (
        "| CNN, CIFAR-10 | 256 × 13 | 3,072 | 3,600 ms | not measured | 14,400 ms | 4.0× | 4.0e-06 | not measured |"
        in text
    )
    assert "| CNN, 224 | 8 × 6 | 48 | 4,800 ms | 100.00 ms | 48,000 ms | 10.0× | 1.0e-09 | 96% |" in text


def test_imputation_row_fills_what_quantus_fills():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(4 * 64, 10))
    row = imputation.run(model.eval(), torch.rand(3, 3, 8, 8), "tiny", repeats=1)
    assert row["systems"] == 3 * (len(FRACTIONS) - 1) and row["max_abs_difference"] < 1e-5
    assert row["ours"] > 0 and row["quantus"] > 0 and row["forward"] > 0
    assert row["per_system"] == pytest.approx(row["ours"] / row["systems"])
    assert row["solver_share"] == pytest.approx(row["ours"] / (row["ours"] + row["forward"]))


def test_interleaved_medians_time_each_function_in_turn():
    from benchmarks.timing import interleaved_medians

    calls = []
    seconds = interleaved_medians({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3)
    assert calls == ["a", "b"] * 4  # one warm-up round, then three timed rounds
    assert set(seconds) == {"a", "b"} and all(s >= 0 for s in seconds.values())
    with pytest.raises(ValueError, match="repeats must be"):
        interleaved_medians({"a": lambda: None}, repeats=0)

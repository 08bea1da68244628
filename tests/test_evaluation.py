"""The per-column computations: chunked paper curves equal one pass; examples are seeded and honest."""

import pytest
import torch
from torch import nn

from signed_saliency.data import ImageSet
from signed_saliency.deletion import deletion_curve
from signed_saliency.evaluation import PAPER_CURVES, cached, curves_to_record, paper_curves, pick_examples
from signed_saliency.saliency import saliency_maps


def tiny_set(n=40, classes=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 6, 6), dtype=torch.uint8, generator=generator)
    labels = torch.arange(n) % classes
    return ImageSet("tiny", "test", images, labels, tuple(f"c{i}" for i in range(classes)), "synthetic")


def tiny_model(classes=4):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, classes))


def test_chunked_paper_curves_equal_one_pass_over_all_images():
    images, model = tiny_set(), tiny_model()
    curves = paper_curves(model, images, chunk=7, progress=False)
    assert list(curves) == [f"{fill}/{method}" for fill, method in PAPER_CURVES]
    x = images.batch(slice(None))
    maps = saliency_maps(model, x)
    for fill, method in PAPER_CURVES:
        whole = deletion_curve(model, x, maps[method], fill)
        torch.testing.assert_close(curves[f"{fill}/{method}"].allegiance, whole.allegiance)
        torch.testing.assert_close(curves[f"{fill}/{method}"].deleted, whole.deleted)
        assert curves[f"{fill}/{method}"].auc == pytest.approx(whole.auc)
    record = curves_to_record(curves)
    assert record["curves"]["black/positive"]["auc"] == pytest.approx(curves["black/positive"].auc)


class Constant(nn.Module):
    """Always predicts class ``c``."""

    def __init__(self, c, classes=4):
        super().__init__()
        self.c, self.classes = c, classes

    def forward(self, x):
        return nn.functional.one_hot(torch.full((x.shape[0],), self.c), self.classes).float()


def test_examples_are_correct_when_possible_and_flagged_otherwise():
    images = tiny_set()
    examples = pick_examples(Constant(2), images, per_class=2, seed=3)
    assert examples.index.shape == (4, 2)
    assert torch.equal(images.labels[examples.index], torch.arange(4)[:, None].expand(4, 2))
    assert examples.correct[2].all() and not examples.correct[[0, 1, 3]].any()
    assert (examples.predicted == 2).all()
    again = pick_examples(Constant(2), images, per_class=2, seed=3)
    assert torch.equal(again.index, examples.index)
    assert not torch.equal(pick_examples(Constant(2), images, per_class=2, seed=4).index, examples.index)
    with pytest.raises(ValueError, match="fewer than 11"):
        pick_examples(Constant(2), images, per_class=11)


def test_cached_recomputes_only_when_the_key_changes(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    path = tmp_path / "result.pt"
    assert cached(path, {"a": 1}, compute) == 1
    assert cached(path, {"a": 1}, compute) == 1
    assert cached(path, {"a": 2}, compute) == 2 and len(calls) == 2

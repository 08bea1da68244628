"""Figures are written as PNG and PDF; atomic writes never leave half a file."""

import pytest
import torch
from PIL import Image

from signed_saliency.deletion import deletion_curve
from signed_saliency.io import atomic_write_text
from signed_saliency.plotting import plot_deletion_curves, plot_history, plot_map_grid, save_figure


def test_map_grid_has_image_five_maps_and_one_colour_bar(tmp_path):
    images = torch.rand(2, 3, 8, 8)
    maps = {name: torch.rand(2, 8, 8) for name in ("original", "positive", "negative", "active", "inactive")}
    maps["active"][1] = 0  # a constant map must draw, not fail or NaN
    fig = plot_map_grid(images, maps, row_labels=["cat", "dog"])
    assert len([ax for ax in fig.axes if ax.images]) == 2 * 6  # image + five maps, per row
    (colour_bar,) = [ax for ax in fig.axes if not ax.images]
    assert colour_bar.get_ylabel() == "saliency (scaled per image)"
    assert [ax.get_title() for ax in fig.axes[:6]] == ["image", *maps]
    png, pdf = save_figure(fig, tmp_path, "fig_maps_test")
    assert Image.open(png).size[0] > 300 and pdf.read_bytes().startswith(b"%PDF")


def test_deletion_and_history_figures(tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 3))
    images, saliency = torch.rand(4, 3, 4, 4), torch.rand(4, 4, 4)
    curves = {"original": deletion_curve(model, images, saliency, "black")}
    fig = plot_deletion_curves(curves, "test")
    assert "AUC" in fig.axes[0].get_legend().get_texts()[0].get_text()
    save_figure(fig, tmp_path, "fig_deletion_test")
    fig = plot_history([{"epoch": 1, "loss": 2.0, "train_accuracy": 0.2, "test_accuracy": 0.3}])
    assert len(fig.axes) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig_deletion_test.pdf", "fig_deletion_test.png"]
    save_figure(fig, tmp_path, "fig_history_test")


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "table.csv"
    atomic_write_text(target, "old")

    class Boom(RuntimeError):
        pass

    def failing(_file):
        raise Boom

    from signed_saliency.io import atomic_write

    with pytest.raises(Boom):
        atomic_write(target, failing)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]  # no temporary file left
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and oct(target.stat().st_mode & 0o777) != "0o600"

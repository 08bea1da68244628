"""Plots are written as PNG and PDF, map grids as one JPEG; atomic writes never leave half a file."""

import pytest
import torch
from PIL import Image

from signed_saliency.deletion import deletion_curve
from signed_saliency.io import atomic_write_text
from signed_saliency.plotting import (
    PICTURE_DPI,
    plot_auc_grid,
    plot_deletion_curves,
    plot_history,
    plot_map_grid,
    plot_randomization,
    save_figure,
    shows_photographs,
)


def test_map_grid_has_image_five_maps_and_one_colour_bar(tmp_path):
    images = torch.rand(2, 3, 8, 8)
    maps = {name: torch.rand(2, 8, 8) for name in ("original", "positive", "negative", "active", "inactive")}
    maps["active"][1] = 0  # a constant map must draw, not fail or NaN
    fig = plot_map_grid(images, maps, row_labels=["cat", "dog"])
    assert len([ax for ax in fig.axes if ax.images]) == 2 * 6  # image + five maps, per row
    (colour_bar,) = [ax for ax in fig.axes if not ax.images]
    assert colour_bar.get_ylabel() == "saliency (scaled per image)"
    assert [ax.get_title() for ax in fig.axes[:6]] == ["image", *maps]
    assert shows_photographs(fig)
    width_inches = fig.get_size_inches()[0]
    (jpeg,) = save_figure(fig, tmp_path, "fig_maps_test")
    assert jpeg.name == "fig_maps_test.jpg" and jpeg.read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG's start of image
    with Image.open(jpeg) as written:
        assert written.format == "JPEG" and written.size[0] == round(width_inches * PICTURE_DPI)
    assert [p.name for p in tmp_path.iterdir()] == ["fig_maps_test.jpg"]


def test_heatmaps_are_plots_not_photographs(tmp_path):
    fig = plot_auc_grid({"black": {"gradient": {"original": 0.2, "positive": 0.1}}})
    assert not shows_photographs(fig)
    png, pdf = save_figure(fig, tmp_path, "fig_auc_test")
    assert png.suffix == ".png" and pdf.read_bytes().startswith(b"%PDF")


def test_randomization_figure_leaves_out_undefined_comparisons():
    steps = [
        {"layers": 1, "spearman": {"original": 0.4, "negative": None}, "ssim": {"original": 0.5, "negative": None}},
        {"layers": 2, "spearman": {"original": 0.2, "negative": None}, "ssim": {"original": 0.3, "negative": None}},
    ]
    steps = [
        {
            **s,
            "spearman": {**dict.fromkeys(("positive", "active", "inactive"), 0.1), **s["spearman"]},
            "ssim": {**dict.fromkeys(("positive", "active", "inactive"), 0.1), **s["ssim"]},
        }
        for s in steps
    ]
    fig = plot_randomization({"rectgrad": steps})
    for ax in fig.axes:
        labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
        assert "negative" not in labels and "original" in labels
    original_ssim = [line for line in fig.axes[1].get_lines() if line.get_label() == "original"][0]
    assert list(original_ssim.get_ydata()) == [1.0, 0.5, 0.3]
    # Beside a method whose negative map is defined, the one legend names it, and layers are whole numbers.
    gradient = [{**s, "spearman": {**s["spearman"], "negative": 0.3}, "ssim": {**s["ssim"], "negative": 0.3}}
                for s in steps]  # fmt: skip
    fig = plot_randomization({"gradient": gradient, "rectgrad": steps})
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["original", "positive", "negative", "active", "inactive"]
    assert all(float(x).is_integer() for ax in fig.axes for x in ax.get_xticks())
    assert legend.get_texts()[0].get_fontsize() >= 8


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


def test_a_write_removes_what_killed_writers_left_and_keeps_live_ones(tmp_path):
    import os

    from signed_saliency.io import is_temporary

    dead = tmp_path / ".table.csv.999999999.abc.tmp.csv"  # no such process
    alive = tmp_path / f".table.csv.{os.getpid()}.xyz.tmp.csv"  # a write in progress in this process
    other = tmp_path / ".other.csv.999999999.abc.tmp.csv"  # another target's: not ours to judge
    for path in (dead, alive, other):
        path.write_text("half")
    atomic_write_text(tmp_path / "table.csv", "whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name, "table.csv"])
    assert all(is_temporary(p) for p in (dead, alive, other)) and not is_temporary(tmp_path / "table.csv")


def test_the_explorer_never_lists_a_temporary_checkpoint(tmp_path):
    import shutil

    from signed_saliency.explorer import finished_checkpoints

    checkpoint = tmp_path / "cifar10_cnn_e1_nall_s42_00000000.pt"
    torch.save({"finished": True, "test_accuracy": 0.5, "config": {"model": "cnn", "pretrained": False,
                "train_size": None, "epochs": 1, "dataset": "cifar10"}}, checkpoint)  # fmt: skip
    shutil.copy(
        checkpoint, tmp_path / f".{checkpoint.name}.999999999.abc.tmp.pt"
    )  # killed after writing, before rename
    listed = finished_checkpoints(tmp_path)
    assert [path for _, path in listed] == [checkpoint]
    assert "1 epoch on all images" in listed[0][0]  # not "1 epochs"

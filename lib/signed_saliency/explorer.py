"""An ipywidgets explorer of the five maps and of deletion, for many images rather than two.

``Explorer()`` (displayed as the last line of a notebook cell, or served by Voila from
``notebooks/05_explore.ipynb``) offers: a trained model (any finished checkpoint), a split,
an image picked by index, by class or at random among correctly or wrongly classified ones,
a target class (predicted, true, or any), the image with its original, positive, negative,
active and inactive maps (one colour map and colour bar, optionally overlaid on the image),
and a deletion preview: fraction, black or white, the altered image for the chosen map,
the new prediction and the top-5 probabilities. It is composed of stock widgets only, and
holds only them: what it shows is loaded and computed by ``explorer_state.ExplorerState``
(its gradient cache included), which is tested without a widget. Problems (no checkpoint yet,
data missing) show as a message in the widget, not a traceback.
"""

from __future__ import annotations

import functools
import html
import io
from pathlib import Path

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure

from signed_saliency import paths
from signed_saliency.data import DataNotFoundError, ImageSet
from signed_saliency.deletion import FILLS
from signed_saliency.explorer_state import ExplorerState, View, finished_checkpoints
from signed_saliency.saliency import METHODS, scale_for_display

CMAP = "inferno"


class Explorer:
    """The explorer's widgets and state; display it, or drive it from Python through its controls."""

    def __init__(self, checkpoint_dir: str | Path | None = None, data_root: str | Path | None = None,
                 device: str = "cpu", seed: int = 0):  # fmt: skip
        self.state = ExplorerState(data_root, device, seed)
        self._quiet = False
        self._build_controls(finished_checkpoints(checkpoint_dir))
        if not self.model_select.options:
            self._fail(
                f"No trained model yet: no finished checkpoint in {paths.checkpoints_dir(checkpoint_dir)}. "
                "Train one first: <code>make reproduce PROFILE=smoke</code> (minutes) or run "
                "<code>notebooks/01_train.ipynb</code>."
            )
        else:
            self._guard(self._load_model)

    # -- building -------------------------------------------------------------------------
    def _build_controls(self, checkpoints) -> None:
        layout = widgets.Layout(width="auto")
        self.model_select = widgets.Dropdown(
            options=checkpoints, description="model", layout=widgets.Layout(width="640px")
        )
        self.split_select = widgets.ToggleButtons(options=["test", "train"], description="split")
        self.index_input = widgets.BoundedIntText(value=0, min=0, max=0, description="image #", layout=layout)
        self.class_select = widgets.Dropdown(options=[], description="class")
        self.by_class_button = widgets.Button(description="next of this class")
        self.correct_button = widgets.Button(description="random correct")
        self.wrong_button = widgets.Button(description="random wrong")
        self.target_select = widgets.Dropdown(options=[], description="target")
        self.overlay_check = widgets.Checkbox(value=False, description="overlay on image")
        self.map_select = widgets.Dropdown(options=list(METHODS), value="positive", description="delete by")
        self.fill_select = widgets.ToggleButtons(options=list(FILLS), value="black", description="fill")
        self.fraction_slider = widgets.FloatSlider(value=0.1, min=0.0, max=0.9, step=0.01, description="fraction",
                                                   continuous_update=False, readout_format=".2f")  # fmt: skip
        self.message = widgets.HTML()
        self.prediction = widgets.HTML()
        self.panels = {name: widgets.Image(format="png") for name in ("image", *METHODS)}
        self.colour_bar = widgets.Image(value=_colour_bar_png(), format="png")
        self.deletion_text = widgets.HTML()
        self.altered_image = widgets.Image(format="png")
        self.top5 = widgets.HTML()
        for widget, name in ((self.index_input, "ss-index"), (self.prediction, "ss-prediction"),
                             (self.fraction_slider, "ss-fraction"), (self.deletion_text, "ss-deletion"),
                             (self.message, "ss-message"), (self.top5, "ss-top5")):  # fmt: skip
            widget.add_class(name)

        self.model_select.observe(lambda _: self._guard(self._load_model), "value")
        self.split_select.observe(lambda _: self._guard(self._load_split), "value")
        self.index_input.observe(lambda _: self._guard(self._show_image), "value")
        self.target_select.observe(lambda _: self._guard(self._show_maps), "value")
        self.overlay_check.observe(lambda _: self._guard(self._draw_maps), "value")
        for control in (self.map_select, self.fill_select, self.fraction_slider):
            control.observe(lambda _: self._guard(self._show_deletion), "value")
        self.by_class_button.on_click(lambda _: self._guard(self.pick_class))
        self.correct_button.on_click(lambda _: self._guard(lambda: self.pick_random(correct=True)))
        self.wrong_button.on_click(lambda _: self._guard(lambda: self.pick_random(correct=False)))

        self.widget = widgets.VBox([
            self.message,
            widgets.HBox([self.model_select, self.split_select]),
            widgets.HBox([self.index_input, self.class_select, self.by_class_button, self.correct_button,
                          self.wrong_button]),
            widgets.HBox([self.target_select, self.overlay_check]),
            self.prediction,
            widgets.HBox([widgets.VBox([widgets.Label(name), panel]) for name, panel in self.panels.items()]
                         + [self.colour_bar]),
            widgets.HTML("<b>Deletion preview</b>"),
            widgets.HBox([self.map_select, self.fill_select, self.fraction_slider]),
            self.deletion_text,
            widgets.HBox([self.altered_image, self.top5]),
        ])  # fmt: skip

    @property
    def view(self) -> View:
        return self.state.view

    @property
    def model(self):
        return self.state.model

    @property
    def images(self) -> ImageSet | None:
        return self.state.images

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def _guard(self, action) -> None:
        """Run a callback; show what went wrong in the widget instead of a traceback."""
        if self._quiet:
            return
        self.message.value = ""  # cleared first, so an error raised by a nested callback stays shown
        try:
            action()
        except DataNotFoundError as error:
            self._fail(f"The data for this model is missing. {html.escape(str(error))}")
        except Exception as error:  # noqa: BLE001 - a UI shows any failure as a message
            self._fail(html.escape(f"{type(error).__name__}: {error}"))

    def _fail(self, text: str) -> None:
        self.message.value = f"<div style='color:#a00; white-space:pre-wrap'>{text}</div>"

    # -- loading ----------------------------------------------------------------------------
    def _load_model(self) -> None:
        self.state.load_model(self.model_select.value)
        self._load_split()

    def _load_split(self) -> None:
        names = self.state.load_split(self.split_select.value).class_names
        self._quiet = True  # set the controls without each one redrawing; one redraw follows
        try:
            self.class_select.options = [(n, i) for i, n in enumerate(names)]
            self.target_select.options = [("predicted", "predicted"), ("true label", "label")] + [
                (n, i) for i, n in enumerate(names)
            ]
            self.target_select.value = "predicted"
            self.class_select.value = 0
            self.index_input.max = len(self.images) - 1
            self.index_input.value = min(self.index_input.value, len(self.images) - 1)
        finally:
            self._quiet = False
        self._show_image()

    # -- picking images ----------------------------------------------------------------------
    def pick_class(self) -> None:
        """The next image (after the current one, wrapping) whose true label is the chosen class."""
        self.index_input.value = self.state.next_of_class(self.class_select.value, self.index_input.value)

    def pick_random(self, correct: bool) -> None:
        """A random image the model classifies correctly (or wrongly), drawn from the seeded generator."""
        # Set outside the state's inference mode: the redraw that follows needs gradients.
        self.index_input.value = self.state.random_index(correct)

    # -- drawing -----------------------------------------------------------------------------
    def _show_image(self) -> None:
        self.state.show_image(self.index_input.value)
        self._show_maps()

    def _show_maps(self) -> None:
        self.state.show_maps(self.target_select.value)
        # The pictures and the deletion preview first: the caption then never names an image whose maps or
        # preview the browser has not received yet.
        self._draw_maps()
        self._show_deletion()
        names = self.images.class_names
        p = self.view.probabilities
        verdict = "correct" if self.view.predicted == self.view.label else "wrong"
        self.prediction.value = (
            f"image #{self.view.index} · true: <b>{names[self.view.label]}</b> · predicted: "
            f"<b>{names[self.view.predicted]}</b> (p = {p[self.view.predicted]:.2f}, {verdict}) · maps for "
            f"<b>{names[self.view.target]}</b>"
        )

    def _draw_maps(self) -> None:
        image = self.images.images[self.view.index].permute(1, 2, 0).numpy()
        self.panels["image"].value = _png(image)
        grey = image.mean(axis=2, keepdims=True) / 255
        for name in METHODS:
            coloured = _colour(scale_for_display(self.view.maps[name]).numpy())
            if self.overlay_check.value:
                coloured = 0.6 * coloured + 0.4 * grey
            self.panels[name].value = _png((coloured * 255).astype("uint8"))

    def _show_deletion(self) -> None:
        method, fill, fraction = self.map_select.value, self.fill_select.value, float(self.fraction_slider.value)
        altered, mask = self.state.preview_deletion(method, fill, fraction)
        probabilities = self.view.altered_probabilities
        names = self.images.class_names
        kept = self.view.altered_predicted == self.view.predicted
        self.deletion_text.value = (
            f"{fill} deletion of {fraction:.0%} by the {method} map: {self.view.deleted_pixels} pixels actually "
            f"deleted ({self.view.deleted_pixels / mask.numel():.1%}) · now predicted "
            f"<b>{names[self.view.altered_predicted]}</b> (p = {probabilities.max():.2f}) · "
            f"{'prediction kept' if kept else 'prediction changed'}"
        )
        self.altered_image.value = _png((altered[0].permute(1, 2, 0).cpu().numpy() * 255).round().astype("uint8"))
        top = probabilities.topk(min(5, len(probabilities)))
        rows = "".join(
            f"<tr><td style='padding-right:6px'>{html.escape(names[i])}</td><td style='width:220px'>"
            f"<div style='background:{'#c0392b' if i == self.view.predicted else '#888'}; width:{100 * p:.1f}%;"
            f" height:12px'></div></td><td>{p:.2f}</td></tr>"
            for i, p in zip(top.indices.tolist(), top.values.tolist())
        )
        self.top5.value = (
            "<div style='margin-left:16px'>top-5 probabilities after deletion (red: the original prediction)"
            f"<table>{rows}</table></div>"
        )


@functools.cache
def _lookup_table() -> np.ndarray:
    import matplotlib

    return matplotlib.colormaps[CMAP](np.linspace(0, 1, 256))[:, :3]


def _colour(scaled: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (H, W) to RGB floats (H, W, 3) through the colour map's lookup table."""
    return _lookup_table()[(np.clip(scaled, 0, 1) * 255).round().astype(int)]


def _png(array, size: int = 160) -> bytes:
    """An (H, W, 3) uint8 array as PNG bytes, enlarged without smoothing to ``size`` pixels."""
    from PIL import Image

    image = Image.fromarray(array)
    if image.width < size:
        image = image.resize((size, size * image.height // image.width), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="png")
    return buffer.getvalue()


def _colour_bar_png() -> bytes:
    fig = Figure(figsize=(0.9, 2.2), layout="constrained")
    ax = fig.subplots()
    ax.imshow(np.linspace(1, 0, 256)[:, None], cmap=CMAP, aspect="auto", extent=(0, 1, 0, 1))
    ax.set_xticks([])
    ax.yaxis.tick_right()
    ax.set_title("scaled\nper image", fontsize=7)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()

"""The five maps in Captum's and Quantus' conventions, for users who already work with them.

``SignedSaliency(model).attribute(inputs, target=..., kind=...)`` mirrors a Captum attribution
method (``captum.attr.Saliency`` and kin): it returns attributions of the inputs' shape
(B, K, H, W), every channel holding the channel-max map that ``saliency_maps`` returns, so
Captum's visualisation and any code written for Captum attributions take it unchanged, and
``captum.attr.NoiseTunnel(SignedSaliency(model, noisy_inputs=True))`` gives SmoothGrad, SmoothGrad²
and VarGrad of the five maps.
``quantus_explain_func`` is an ``explain_func`` for Quantus metrics (``PixelFlipping`` is the one the
tests run): numpy inputs and targets in, a numpy (B, 1, H, W) map out, the map kind chosen through
``explain_func_kwargs``. ``quantus.ROAD`` 0.6.0 raises ``IndexError`` inside Quantus itself (its
``noisy_linear_imputation`` gets pixel-channel indices for a pixel mask), with Quantus' own explain
functions too: for ROAD use ``controls.control_curves``, whose imputation fill is ROAD's.
Both compute exactly ``saliency_maps``' values (the tests compare them).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from signed_saliency.checks import METHODS
from signed_saliency.saliency import saliency_maps


def _check_kind(kind: str) -> str:
    if kind not in METHODS:
        raise ValueError(f"unknown kind {kind!r}: choose one of {METHODS}")
    return kind


def _captum_method(attribute):
    """Wrap ``attribute`` as Captum's ``log_usage`` does, so that ``attribute.__wrapped__`` is the plain function:
    ``NoiseTunnel`` calls that one on every batch of noisy copies."""

    @functools.wraps(attribute)
    def wrapper(*args, **kwargs):
        return attribute(*args, **kwargs)

    return wrapper


class SignedSaliency:
    """A Captum-style attribution method for the paper's five maps.

    Example:
        >>> explainer = SignedSaliency(model)
        >>> attributions = explainer.attribute(images, target=3, kind="active")
        >>> attributions.shape == images.shape  # (B, K, H, W), as Captum's methods return
        True
    """

    multiplies_by_inputs = False  # Captum's flag: these are gradient maps, not gradient × input

    def __init__(self, forward_func: nn.Module, noisy_inputs: bool = False):
        if not isinstance(forward_func, nn.Module):
            raise ValueError(f"SignedSaliency takes a torch.nn.Module, got {type(forward_func).__name__}")
        self.forward_func, self.noisy_inputs = forward_func, bool(noisy_inputs)

    def has_convergence_delta(self) -> bool:
        """Captum's flag for methods that can return a convergence delta: these maps have none."""
        return False

    @_captum_method
    def attribute(
        self, inputs: torch.Tensor, target=None, kind: str = "original", competitors: int | None = None
    ) -> torch.Tensor:
        """Attributions (B, K, H, W) of ``kind`` for ``inputs`` (B, K, H, W) in [0, 1] (any finite values when
        built with ``noisy_inputs=True``, as for ``captum.attr.NoiseTunnel``, whose noise leaves [0, 1]).

        ``target`` is Captum's: None (here: the predicted class), an int, a list of ints or a (B,) tensor.
        ``competitors`` is ``saliency_maps``'; each channel holds the same map (a read-only broadcast view).
        """
        kind = _check_kind(kind)
        maps = saliency_maps(self.forward_func, inputs, (kind,), target, competitors=competitors,
                             noisy_inputs=self.noisy_inputs)  # fmt: skip
        return maps[kind][:, None].expand_as(inputs)


def quantus_explain_func(
    model: nn.Module,
    inputs,
    targets,
    kind: str = "original",
    device: str | torch.device | None = None,
    competitors: int | None = None,
    **unknown,
) -> np.ndarray:
    """An ``explain_func`` for Quantus metrics: the ``kind`` map of ``inputs`` (B, K, H, W) for ``targets`` (B,).

    Returns a float32 numpy array (B, 1, H, W). Quantus passes ``device`` itself; choose the map with
    ``explain_func_kwargs={"kind": "positive"}``. Anything else is refused, not silently dropped.

    Example:
        >>> metric = quantus.PixelFlipping(features_in_step=16, perturb_baseline="black")
        >>> scores = metric(model=model, x_batch=x, y_batch=y, a_batch=None, explain_func=quantus_explain_func,
        ...                 explain_func_kwargs={"kind": "positive"}, device="cpu")
    """
    if unknown:
        raise ValueError(f"quantus_explain_func takes kind, device and competitors; got also {sorted(unknown)}")
    kind = _check_kind(kind)
    if device is None:
        device = next(iter(model.parameters()), torch.empty(0)).device
    images = torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=device)
    target = torch.as_tensor(np.asarray(targets), device=device).long().reshape(-1)
    maps = saliency_maps(model, images, (kind,), target, competitors=competitors)
    return maps[kind][:, None].detach().cpu().numpy().astype(np.float32)

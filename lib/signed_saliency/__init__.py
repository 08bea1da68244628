"""signed-saliency: signed and active saliency maps, deletion curves, and the paper's chain.

The reproducible companion of "A matter of attitude: Focusing on positive and active
gradients to boost saliency maps" (Llorente, Boal, Sánchez-Úbeda). The method and protocol
are specified in ``shared/PROTOCOL.md``; each submodule holds one idea: ``paths`` (every
folder), ``data`` (datasets as uint8 tensors), ``models``, ``training``, ``saliency`` (the
five maps), ``deletion`` (allegiance curves and AUC) and ``plotting``.
"""

__version__ = "0.1.0"

# The top-level names load their module on first use (PEP 562), so that ``import signed_saliency`` (and a
# workflow job that only runs a notebook) does not pay for importing torch.
_EXPORTS = {
    "FRACTIONS": "deletion",
    "allegiance_curve": "deletion",
    "auc": "deletion",
    "deletion_curve": "deletion",
    "deletion_curves": "deletion",
    "METHODS": "saliency",
    "saliency_maps": "saliency",
    "scale_for_display": "saliency",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'signed_saliency' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"signed_saliency.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])

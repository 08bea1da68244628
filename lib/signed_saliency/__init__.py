"""signed-saliency: signed and active saliency maps, deletion curves, and the paper's chain.

The reproducible companion of "A matter of attitude: Focusing on positive and active
gradients to boost saliency maps" (Llorente, Boal, Sánchez-Úbeda). The method and protocol
are specified in ``shared/PROTOCOL.md``; each submodule holds one idea: ``paths`` (every
folder), ``data`` (datasets as uint8 tensors), ``models``, ``training``, ``saliency`` (the
five maps), ``deletion`` (allegiance curves and AUC) and ``plotting``.
"""

__version__ = "0.1.0"

from signed_saliency.deletion import FRACTIONS, allegiance_curve, auc, deletion_curve, deletion_curves
from signed_saliency.saliency import METHODS, saliency_maps, scale_for_display

__all__ = [
    "FRACTIONS",
    "METHODS",
    "__version__",
    "allegiance_curve",
    "auc",
    "deletion_curve",
    "deletion_curves",
    "saliency_maps",
    "scale_for_display",
]

"""Benchmarks: the library's expensive steps side by side with what a user would otherwise run.

``python -m benchmarks`` (or ``make bench``) times, in one process and on one device: the
gradients of every class (ours: one forward and one class-batched backward; theirs: a
per-class loop as in the authors' code, and Captum's ``Saliency`` per class), the six
deletion curves (ours against Quantus' ``PixelFlipping`` and against the bare forward
passes the curves need), training throughput (uint8 tensors against a ``DataLoader`` of
PIL images; cached frozen-backbone features against the backbone every epoch) and the
smoke profile end to end. Each module holds one comparison; ``timing`` holds the clock
and ``report`` turns the stored results of every device into ``benchmarks/results.md``.
"""

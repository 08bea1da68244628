"""The run profiles, defined once: ``smoke`` (CI), ``demo`` (5 min), ``quick`` (a 2-core CPU, ~100 min), ``paper``.

A profile is a list of ``Column``s, one per model × dataset of the paper's tables, each
saying how much to train and on how many images to measure. The runner passes a column's
fields to every notebook as papermill parameters, so a notebook run by hand with the same
values computes the same thing. ``paper`` is the exact protocol (PROTOCOL §2–§5: 50 epochs,
full splits, all six columns); it needs a GPU to finish in reasonable time and ImageNet
weights for the two pre-trained columns. ``quick`` keeps the four from-scratch columns
with fewer epochs and image subsets so that the paper's qualitative conclusions can be
checked on a 2-core CPU in about 100 minutes (figures/quick/README.md has the measured time);
``smoke`` touches every code path in minutes, with models untrained on purpose; ``demo`` shows the
paper's effect on one column in under five minutes, running only the notebooks that show it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from signed_saliency.data import DATASETS
from signed_saliency.models import MODELS
from signed_saliency.training import TrainConfig


@dataclass(frozen=True)
class Column:
    """One model × dataset column and how much work it gets (None = the whole split)."""

    dataset: str
    model: str
    pretrained: bool = False
    epochs: int = 50
    train_size: int | None = None  # training images
    test_size: int | None = None  # test images for Table 1's accuracy
    deletion_images: int | None = None  # test images for Tables 2-3
    appendix_images: int | None = None  # train images for Appendix B
    appendix_examples: int = 3  # extra examples per class for Appendix A
    sanity_images: int = 256  # test images for the sanity checks (notebook 06)
    beyond_images: int = 256  # test images for the other methods' and graded deletion curves (notebook 07)
    controls_images: int | None = None  # test images for the deletion metric's controls (notebook 08)
    # ROAD's imputation fill in notebook 08 (SRG under imputation, the imputation cell of ranking × fill); off
    # only to time the controls without it.
    controls_imputation: bool = True

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}: choose one of {DATASETS}")
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}: choose one of {MODELS}")
        for name in (
            "train_size",
            "test_size",
            "deletion_images",
            "appendix_images",
            "sanity_images",
            "beyond_images",
            "controls_images",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be positive or None (all images), got {value}")

    @property
    def id(self) -> str:
        """``cifar10_cnn``, ``imagenette_resnet18-pretrained``: used in file names."""
        return f"{self.dataset}_{self.model}{'-pretrained' if self.pretrained else ''}"

    @property
    def label(self) -> str:
        """``cifar10/cnn``: what ``--only`` matches."""
        return f"{self.dataset}/{self.model}{'-pretrained' if self.pretrained else ''}"

    def train_config(self, seed: int = 42) -> TrainConfig:
        return TrainConfig(self.dataset, self.model, self.pretrained, self.epochs, seed=seed,
                           train_size=self.train_size, test_size=self.test_size)  # fmt: skip

    def parameters(self) -> dict:
        """The column as notebook parameters (papermill injects them after the parameters cell)."""
        return asdict(self)


@dataclass(frozen=True)
class Profile:
    name: str
    columns: tuple[Column, ...]
    description: str
    seed: int = 42
    notebooks: tuple[str, ...] = ()  # the notebooks of the chain it runs by default; () = every one
    caveat: str = ""  # the first thing its generated README says, where its numbers need a warning

    def select(self, only: list[str] | None) -> tuple[Column, ...]:
        """The columns named in ``only`` (``dataset/model`` labels or ids); all when None."""
        if not only:
            return self.columns
        known = {c.label: c for c in self.columns} | {c.id: c for c in self.columns}
        unknown = [name for name in only if name not in known]
        if unknown:
            raise ValueError(f"profile {self.name!r} has no column {unknown}; its columns: {sorted(known)}")
        return tuple(c for c in self.columns if c.label in only or c.id in only)


PROFILES = {
    "smoke": Profile(
        "smoke",
        (
            Column(
                "cifar10",
                "cnn",
                epochs=1,
                train_size=2000,
                test_size=500,
                deletion_images=64,
                appendix_images=32,
                appendix_examples=1,
                sanity_images=4,
                beyond_images=8,
                controls_images=32,
            ),
            Column(
                "imagenette",
                "cnn",
                epochs=1,
                train_size=200,
                test_size=100,
                deletion_images=8,
                appendix_images=4,
                appendix_examples=1,
                sanity_images=2,
                beyond_images=2,
                controls_images=4,
            ),
            Column(
                "imagenette",
                "resnet18",
                pretrained=True,
                epochs=1,
                train_size=100,
                test_size=50,
                deletion_images=4,
                appendix_images=4,
                appendix_examples=1,
                sanity_images=2,
                beyond_images=2,
                controls_images=4,
            ),
        ),  # fmt: skip
        "every notebook and code path on tiny subsets, one epoch (CI)",
        caveat="**These models are untrained on purpose, and the numbers below mean nothing.** `smoke` trains "
        "one epoch on tiny subsets so that CI runs every notebook and code path in minutes; its models sit near "
        "chance, so their maps and curves cannot show the paper's effect either way. For a first look at the "
        "effect, run `make demo` (under 5 minutes); for the paper's tables, `make reproduce`.",
    ),
    "demo": Profile(
        "demo",
        # A first look in under five minutes on a 2-core CPU (`make demo` from a fresh clone: 110 s, 2026-12-05):
        # the CIFAR-10 CNN reaches 0.428 test accuracy after 3 epochs of the complete data under
        # NUMERICS=reproducible (0.379 after 2), which is enough for the maps to follow the class, and notebook
        # 08's verdicts need at least 30 images (200 here).
        (Column("cifar10", "cnn", epochs=3, deletion_images=500, controls_images=200),),
        "a first look in under five minutes: the CIFAR-10 CNN trained for 3 epochs, its five maps, the deletion "
        "curves on 500 test images and the metric controls on 200",
        notebooks=("01_train", "02_qualitative", "03_quantitative", "08_metric_controls"),
    ),
    "quick": Profile(
        "quick",
        # Sized from speeds measured on the 2-core CPU (train / forward / all-five-maps images per second):
        # CNN@32 2944 / - / 567, ResNet-18@32 424 / - / 103, CNN@224 52 / 232 / 10.5, ResNet-18@224 9.1 / 39 / 3.4,
        # and from the learning curves measured on the complete data (training has no schedule, so a run of
        # k epochs is the first k epochs of a longer one): every column must reach 0.40 test accuracy. The
        # CIFAR-10 CNN reaches 0.600 at epoch 10 (0.636 at 20) and ResNet-18 0.440 at epoch 2 of 25,000
        # images (0.563 at 3: the third epoch's 165 s did not fit the 100 minutes); the Imagenette CNN needs
        # all 8 epochs (0.384 at 7, 0.422 at 8) and ResNet-18 5 of 4,000 images (below), so they keep them and
        # get fewer images to measure on. On the slower of two machines a run with the
        # earlier image counts took 101.3 min (68.4 of it training), and a notebook's time grows with its images
        # (08 on the Imagenette CNN: 363 s for 8), so these were halved: 06-08 of the CIFAR-10 ResNet-18, 03-08
        # of the Imagenette CNN, 03, 04 and 08 of the Imagenette ResNet-18 (its 06 and 07 already had 2 images).
        # Notebook 08's verdicts need 30 images (PROTOCOL §8). Its controls cost per test image at 224 px, one
        # thread, NUMERICS=reproducible (2026-12-05): CNN 3.6 s without ROAD's imputation and 9.0 s with it
        # (the exact nested-dissection solver; 41 s with the iterative one before it), ResNet-18 30.2 s and
        # 41.3 s (94 curves of 13 fractions, mostly ResNet-18 forwards). Both keep it: 200 images for the CNN
        # (its Tables 2-3 on 500), 50 for the ResNet-18.
        # Under NUMERICS=reproducible (kernels capped at AVX2) the Imagenette ResNet-18's test accuracy after
        # epochs 1-5 was 0.142, 0.290, 0.268, 0.250, 0.546 (train accuracy 0.36 to 0.66; 2026-12-05), so it trains
        # 5 epochs (about 380 s each here), and its Tables 2-3 get 200 images.
        # The whole profile's jobs, each timed alone (2026-12-05): training 3,363 s on 2 threads, one at a time;
        # notebooks 5,998 s of one core, 08 alone 4,073 (Imagenette CNN 1,702, ResNet-18 2,157): at least 106 min
        # with JOBS=2. Fitting 100 would leave the ResNet-18's 08 27 images, under the 30 a verdict needs (or
        # the CNN's 82), so both keep their sizes and the profile its 106 minutes.
        (
            Column(
                "cifar10",
                "cnn",
                epochs=10,
                deletion_images=2000,
                appendix_images=2000,
                sanity_images=100,
                beyond_images=250,
                controls_images=500,
            ),
            Column(
                "cifar10",
                "resnet18",
                epochs=2,
                train_size=25000,
                deletion_images=500,
                appendix_images=250,
                sanity_images=16,
                beyond_images=50,
                controls_images=100,
            ),
            Column(
                "imagenette",
                "cnn",
                epochs=8,
                test_size=1000,
                deletion_images=500,
                appendix_images=50,
                sanity_images=2,
                beyond_images=4,
                controls_images=200,
            ),
            Column(
                "imagenette",
                "resnet18",
                epochs=5,
                train_size=4000,
                test_size=500,
                deletion_images=200,
                appendix_images=10,
                sanity_images=2,
                beyond_images=2,
                controls_images=50,
            ),
        ),  # fmt: skip
        "the four from-scratch columns with fewer epochs and image subsets, every model above 0.40 test accuracy, "
        "planned for 100 minutes on a 2-core CPU; its jobs' own times add up to at least 106 (training 56 minutes, "
        "one at a time; notebooks 100 minutes of one core, two at once), so it takes longer (the measured wall "
        "time is below)",
    ),
    "paper": Profile(
        "paper",
        (
            # Notebook 08 (beyond the paper) on a seeded subset: its imputation fill solves one linear system
            # per image, fraction and curve, and 2,000 / 500 images already give intervals of a few hundredths.
            Column("cifar10", "cnn", controls_images=2000),
            Column("cifar10", "resnet18", controls_images=2000),
            Column("imagenette", "cnn", controls_images=500),
            Column("imagenette", "resnet18", controls_images=500),
            Column("imagenette", "resnet18", pretrained=True, controls_images=500),
            Column("imagenette", "convnext_tiny", pretrained=True, controls_images=500),
        ),
        "the exact protocol: 50 epochs, full splits, all six columns (needs a GPU and ImageNet weights)",
    ),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}: choose one of {sorted(PROFILES)}")
    return PROFILES[name]


def find_column(profile: str, dataset: str, model: str, pretrained: bool = False) -> Column | None:
    """The column of ``profile`` for this model × dataset, if it has one."""
    for column in get_profile(profile).columns:
        if (column.dataset, column.model, column.pretrained) == (dataset, model, pretrained):
            return column
    return None

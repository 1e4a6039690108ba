"""Train or fine-tune a detector: a thin layer over Ultralytics training.

What railvision adds: a sensible default starting checkpoint, albumentations
domain augmentation for long-range ground photos and overhead crops (handed to
Ultralytics' own ``augmentations=`` hook), optional mixing-in of synthetic data,
and an offline-safe Ultralytics setup. torch and Ultralytics are imported only
inside the functions that train.
"""

from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from railvision.data import load_dataset, split_entries, write_data_yaml, write_repeated
from railvision.taxonomy import CLASS_NAMES
from railvision.ultralytics_env import amp_setting, import_ultralytics, resolve_device

SHIPPED_WEIGHTS = Path("models/railvision-n.pt")
PRETRAINED_WEIGHTS = Path("../shared/pretrained/yolo26n-coco.pt")
SCRATCH_MODEL = "yolo26n.yaml"
DEFAULT_EPOCHS = 30
MIN_STEPS = 120  # what 30 photos get in 30 epochs at batch 8, where the defaults were measured
TRAINABLE = ("class-rows", "class-branch", "head")  # --train-only (railvision.heads.frozen_except), smallest first
SOLVERS = ("sgd", "linear")  # linear: the class rows in closed form on frozen features (railvision.kinds)

# Albumentations transforms as data: (class name, keyword arguments). Probabilities are low on
# purpose: each photo gets at most a couple of degradations on top of Ultralytics' own mosaic,
# HSV and flip augmentation.
GROUND_TRANSFORMS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("RandomFog", {"fog_coef_range": (0.1, 0.35), "alpha_coef": 0.08, "p": 0.15}),  # long-range haze / fog
    ("Defocus", {"radius": (1, 3), "alias_blur": (0.1, 0.3), "p": 0.1}),  # telephoto focus miss
    ("MotionBlur", {"blur_limit": (3, 7), "p": 0.1}),  # hand-held long lens
    ("GridDistortion", {"num_steps": 10, "distort_limit": (-0.04, 0.04), "p": 0.1}),  # heat shimmer
    ("RandomGamma", {"gamma_limit": (100, 220), "p": 0.15}),  # low light (gamma > 1 darkens)
    ("GaussNoise", {"std_range": (0.02, 0.08), "p": 0.2}),  # sensor noise
)
OVERHEAD_ORIENTATION: tuple[tuple[str, dict[str, Any]], ...] = (
    ("RandomRotate90", {"p": 0.5}),  # north is arbitrary in a crop
    ("VerticalFlip", {"p": 0.5}),
)
OVERHEAD_PHOTOMETRIC: tuple[tuple[str, dict[str, Any]], ...] = (
    ("Downscale", {"scale_range": (0.35, 0.8), "p": 0.3}),  # coarser ground resolution
    ("RandomBrightnessContrast", {"brightness_limit": 0.25, "contrast_limit": 0.25, "p": 0.4}),  # sun angle
    # pan-sharpening colour fringes
    ("ChromaticAberration", {"primary_distortion_limit": 0.05, "secondary_distortion_limit": 0.05, "p": 0.2}),
)
JPEG: tuple[tuple[str, dict[str, Any]], ...] = (("ImageCompression", {"quality_range": (30, 90), "p": 0.3}),)
# "mixed" leaves out the overhead rotations: an upside-down train never occurs in a ground photo.
AUGMENTATIONS: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    "ground": GROUND_TRANSFORMS + JPEG,
    "overhead": OVERHEAD_ORIENTATION + OVERHEAD_PHOTOMETRIC + JPEG,
    "mixed": GROUND_TRANSFORMS + OVERHEAD_PHOTOMETRIC + JPEG,
    "none": (),
}


@dataclass
class TrainConfig:
    data: Path
    weights: str | None = None  # None: default_weights()
    # defaults measured for the main use, a few dozen of one's own photos (the model card's few-shot curve)
    epochs: int | None = None  # None: auto_epochs() for the number of training photos
    imgsz: int = 640
    batch: int = 8
    device: str = "auto"
    resume: bool = False
    seed: int = 0
    augment: str = "mixed"
    synthetic: int = 0
    repeat_rare: float = 0.0  # LVIS repeat-factor threshold for the train photos (``data.repeat_factors``); 0: off
    project: Path = Path("runs/train")
    name: str = "exp"
    workers: int = 4
    freeze: int = 10  # first N layers (10: the backbone) kept as they are: faster, and safer on small data
    optimizer: str = "AdamW"  # Ultralytics' "auto" picks AdamW at lr 0.0011 for runs this short
    lr0: float = 0.0005  # half of what "auto" picks: better finding on real photos after 30 (model card)
    val: bool = True  # validate after every epoch (the last epoch is always validated)
    hours: float | None = None  # wall-clock budget: Ultralytics refits the epoch count and LR schedule to it
    init_from_class: str | None = None  # start every class's row from this class of the start checkpoint
    train_only: str | None = None  # one of TRAINABLE: everything else (BN statistics too) stays fixed
    stop_after: int | None = None  # end after this many epochs of the ``epochs``-long schedule
    solver: str = "sgd"  # sgd: Ultralytics' trainer; linear: fit the class rows directly (class-rows only)
    extra: dict[str, Any] = field(default_factory=dict)  # passed through to Ultralytics (linear: to LinearFit)


def use_all_cores(trainer: Any) -> None:
    """Ultralytics trains on ``cpu_count - 1`` torch threads with no loader workers: one core of two here."""
    if trainer.device.type == "cpu":
        import torch

        torch.set_num_threads(os.cpu_count() or 1)


def loader_workers(workers: int):
    """Callback giving the CPU trainer its data-loader workers back: Ultralytics sets none on CPU, so decoding
    and augmenting ran on the one core the model was not using (half the machine idle with a frozen trunk)."""

    def restore(trainer: Any) -> None:
        trainer.args.workers = workers

    return restore


def stop_after(epochs: int):
    """Callback ending training after ``epochs`` epochs while the LR schedule stays the one for ``--epochs``:
    how a checkpoint chosen mid-run (on real photos) is reproduced without training past it."""

    def check(trainer: Any) -> None:
        if trainer.epoch + 1 >= epochs:
            trainer.stop = True

    return check


def auto_epochs(train_images: int, batch: int) -> int:
    """``DEFAULT_EPOCHS``, or more for a handful of photos so that the run still takes ``MIN_STEPS``
    optimiser steps: at the fine-tuning learning rate, 10 photos for 30 epochs (60 steps) learned too
    little, for 60 epochs as much as 30 photos for 30 (the model card's few-shot table)."""
    steps_per_epoch = max(1, -(-train_images // max(batch, 1)))
    return max(DEFAULT_EPOCHS, -(-MIN_STEPS // steps_per_epoch))


def short_run_schedule(epochs: int) -> dict[str, float]:
    """Warm-up and mosaic-closing scaled to the run: Ultralytics' 3 warm-up epochs and 10 mosaic-free
    final epochs suit 100-epoch GPU runs, but would be the whole of a few-epoch CPU run."""
    return {"warmup_epochs": min(3.0, 0.1 * epochs), "close_mosaic": min(10, epochs // 3)}


@dataclass
class TrainResult:
    save_dir: Path
    best: Path
    last: Path
    metrics: dict[str, float]
    seconds: float
    data: Path  # the data.yaml actually trained on (the merged one with --synthetic)
    weights: str


def default_weights() -> tuple[str, str]:
    """Starting checkpoint and why it was chosen: shipped model, else partial COCO start, else scratch."""
    if SHIPPED_WEIGHTS.is_file():
        return str(SHIPPED_WEIGHTS), "fine-tuning the shipped model"
    if PRETRAINED_WEIGHTS.is_file():
        return str(PRETRAINED_WEIGHTS), "starting from the COCO-pretrained YOLO26n"
    return SCRATCH_MODEL, f"no {SHIPPED_WEIGHTS} or {PRETRAINED_WEIGHTS}: training from scratch"


def domain_augmentations(kind: str) -> list:
    """Fresh albumentations transform objects for ``ground``, ``overhead``, ``mixed`` or ``none``."""
    if kind not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation set {kind!r}; choose from {', '.join(AUGMENTATIONS)}")
    import albumentations as A

    return [getattr(A, name)(**kwargs) for name, kwargs in AUGMENTATIONS[kind]]


def synthetic_available() -> bool:
    return importlib.util.find_spec("railvision.synth") is not None


def generate_synthetic(n: int, out_dir: Path, seed: int, imgsz: int, log=print) -> Path:
    """Render ``n`` synthetic images (both views, the default backgrounds) and return their data.yaml."""
    if not synthetic_available():
        raise RuntimeError("--synthetic is not available: the railvision.synth package is not installed in this copy")
    from railvision.synth import SynthError
    from railvision.synth.dataset import VIEWS, SynthConfig, generate, print_progress
    from railvision.synth.post import default_backgrounds

    cfg = SynthConfig(out_dir, n, VIEWS, seed, imgsz, backgrounds=default_backgrounds())
    try:
        stats = generate(cfg, workers=os.cpu_count() or 1, progress=print_progress)
    except SynthError as exc:
        raise RuntimeError(f"synthetic data generation failed: {exc}") from exc
    log(f"wrote {stats['images']} synthetic images ({stats['instances']} boxes) to {out_dir}")
    return out_dir / "data.yaml"


def merge_datasets(real: Path, synthetic: Path, out: Path) -> Path:
    """Write a data.yaml training on both sets' train splits and validating on the real set only."""
    out.mkdir(parents=True, exist_ok=True)
    train = [str(p) for p in split_entries(real, "train") + split_entries(synthetic, "train")]
    layout = {"train": train, "val": [str(p) for p in split_entries(real, "val")]}
    return write_data_yaml(out, load_dataset(real).names, (), layout)


def dataset_names(data_yaml: Path) -> list[str]:
    import yaml

    names = yaml.safe_load(Path(data_yaml).read_text()).get("names", [])
    return [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)


def gated_trainer() -> type:
    """An Ultralytics detection trainer that trains a gated start (the shipped model) as it is, gate included.

    Ultralytics builds a fresh head from the model's yaml and copies the weights into it; whether the gated
    branches come along then depends on whether their widths happen to differ from the fresh ones. Here the
    start itself is trained: the prior branch keeps finding what COCO found and learns single cars from the
    photos, the kind rows keep typing as the shipped rows did and adapt too (``--train-only`` freezes the
    prior with the features)."""
    from ultralytics.models.yolo.detect import DetectionTrainer

    from railvision.heads import is_gated

    class GatedDetectionTrainer(DetectionTrainer):
        def get_model(self, cfg=None, weights=None, verbose=True):
            if weights is None or not is_gated(weights) or weights.nc != self.data["nc"]:
                return super().get_model(cfg, weights, verbose)
            model = weights.float()
            model.names = self.data["names"]
            for param in model.parameters():
                param.requires_grad_(True)
            return model

    return GatedDetectionTrainer


def train(cfg: TrainConfig, log=print) -> TrainResult:
    """Run one Ultralytics training and return where its outputs went."""
    import_ultralytics()
    from ultralytics import YOLO

    if cfg.weights:
        weights, why = cfg.weights, "given"
    elif cfg.resume:
        weights, why = str(Path(cfg.project) / cfg.name / "weights" / "last.pt"), "resuming"
    else:
        weights, why = default_weights()
    log(f"weights: {weights} ({why})")
    data = Path(cfg.data)
    names = dataset_names(data)
    if names != list(CLASS_NAMES):
        log(f"note: dataset classes {names} differ from the package taxonomy {list(CLASS_NAMES)}")
    if cfg.synthetic > 0:
        synth_dir = Path(cfg.project) / f"{cfg.name}-synthetic"
        log(f"generating {cfg.synthetic} synthetic images into {synth_dir}")
        synth_yaml = generate_synthetic(cfg.synthetic, synth_dir, cfg.seed, cfg.imgsz, log)
        data = merge_datasets(data, synth_yaml, synth_dir / "merged")
        log(f"training on {data} (real + synthetic; validation on the real set)")

    if cfg.init_from_class:
        from railvision.heads import write_class_init

        init = Path(cfg.project) / f"{cfg.name}-init-{cfg.init_from_class}.pt"
        weights = str(write_class_init(weights, cfg.init_from_class, names, init))
        log(f"class rows started from {cfg.init_from_class!r}: {weights}")
    device = resolve_device(cfg.device)
    if cfg.solver == "linear":
        return fit_linear(cfg, weights, data, device, log)
    if cfg.repeat_rare > 0:  # not for the linear fit: each box there is already one sample
        data, entries = write_repeated(data, cfg.repeat_rare, Path(cfg.project) / f"{cfg.name}-repeated", cfg.seed)
        log(f"photos of rare classes repeated (threshold {cfg.repeat_rare}): {entries} entries in the train list")
    epochs = cfg.epochs
    if epochs is None:
        photos = len(load_dataset(data).splits.get("train", []))
        epochs = auto_epochs(photos, cfg.batch)
        log(f"{epochs} epochs for {photos} training photos (at least {MIN_STEPS} optimiser steps)")
    from railvision.heads import frozen_except, is_gated

    model = YOLO(weights)
    gated = is_gated(model.model)
    if gated:
        log("training the start with its prior gate: the result keeps it")
    freeze: int | list[int | str] | None = cfg.freeze or None
    if cfg.train_only:
        freeze = frozen_except(model.model, cfg.train_only)
        log(f"training only the {cfg.train_only}; {len(freeze)} layers and branches fixed")
    model.add_callback("on_train_start", use_all_cores)
    model.add_callback("on_pretrain_routine_start", loader_workers(cfg.workers))
    if cfg.stop_after:
        model.add_callback("on_fit_epoch_end", stop_after(cfg.stop_after))
    start = time.perf_counter()
    if cfg.resume:
        model.train(resume=True, device=device, workers=cfg.workers)
    else:
        model.train(
            trainer=gated_trainer() if gated else None,
            data=str(data),
            epochs=epochs,
            imgsz=cfg.imgsz,
            batch=cfg.batch,
            device=device,
            seed=cfg.seed,
            project=str(Path(cfg.project).resolve()),
            name=cfg.name,
            workers=cfg.workers,
            amp=amp_setting(device),
            augmentations=domain_augmentations(cfg.augment) or None,
            freeze=freeze,
            val=cfg.val,
            **({"time": cfg.hours} if cfg.hours else {}),
            **({"optimizer": cfg.optimizer, "lr0": cfg.lr0} | short_run_schedule(epochs) | cfg.extra),
        )
    seconds = time.perf_counter() - start
    trainer = model.trainer
    save_dir = Path(trainer.save_dir)
    metrics = {k: float(v) for k, v in (trainer.metrics or {}).items()}
    return TrainResult(save_dir, Path(trainer.best), Path(trainer.last), metrics, seconds, data, weights)


def fit_linear(cfg: TrainConfig, weights: str, data: Path, device: str, log=print) -> TrainResult:
    """The class rows of ``weights`` fitted in closed form (:mod:`railvision.kinds`) on ``data``'s train split;
    everything else stays as it is. Writes ``last.pt`` and ``best.pt`` (the same) as a training run would."""
    from railvision.heads import load_yolo
    from railvision.kinds import LinearFit, dataset_samples, fit_kind_rows

    if cfg.train_only not in (None, "class-rows"):
        raise RuntimeError(f"--solver linear fits the class rows only, not --train-only {cfg.train_only}")
    known = {f.name for f in fields(LinearFit)} - {"size_px"}
    if unknown := sorted(set(cfg.extra) - known):
        raise RuntimeError(f"--solver linear takes --set {', '.join(sorted(known))}; not {', '.join(unknown)}")
    fit = LinearFit(**({"seed": cfg.seed} | cfg.extra))
    yolo = load_yolo(weights)
    yolo.model.to("cpu" if device == "cpu" else f"cuda:{str(device).split(',')[0]}")
    start = time.perf_counter()
    log(f"fitting the class rows on {data} (l2 {fit.l2}, {'balanced' if fit.balanced else 'data'} class prior)")
    accuracy = fit_kind_rows(yolo.model, dataset_samples(data), cfg.imgsz, fit, log)
    save_dir = Path(cfg.project) / cfg.name
    last, best = save_dir / "weights" / "last.pt", save_dir / "weights" / "best.pt"
    last.parent.mkdir(parents=True, exist_ok=True)
    yolo.model.to("cpu")
    yolo.save(last)
    yolo.save(best)
    metrics = {f"accuracy/{k}": v for k, v in accuracy.items()}
    return TrainResult(save_dir, best, last, metrics, time.perf_counter() - start, data, weights)

"""`infer.*`, `qc.*`, `review.*`, `drift.*`: how a drop is labeled, accepted, sampled for
review and watched."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from raylabel.config.fields import (
    ALLOCATIONS,
    ENSEMBLE_MODES,
    QC_BOUNDS,
    UNCERTAIN_STRATEGIES,
    at_least,
    doc,
    in_range,
    one_of,
    positive,
    setting,
)
from raylabel.errors import ConfigError

REVIEW_MEDIA = ("inline", "uri", "presigned")
PULL_REVIEWS = "labelstudio"  # review.reviewed: pull from the Label Studio project
DECODE_ON_DEVICE_MODES = ("auto", "always", "never")


@dataclass
class InferConfig:
    """`raylabel label`: the Ray Data pipeline, the inference actor pool and its fault budget."""

    batch_size: int = setting(256, "items per inference call of an actor; raise it on a GPU")
    num_actors: int = setting(
        0,
        "inference actors; 0 = one per GPU (infer.use_gpu), one per CPU (decoding in the "
        "actors) or one per 2 CPUs",
    )
    use_gpu: bool = setting(False, "run the inference actors on GPUs, one each")
    num_cpus_per_actor: float = setting(
        0.0,
        "CPUs each inference actor reserves; 0 = automatic, always leaving room for the "
        "read/decode tasks",
    )
    preprocess_batch_size: int = setting(256, "items per batch of the decode/tokenize tasks")
    topk: int = setting(3, "labels and scores each labeled row keeps in topk_labels / topk_scores")
    max_pixels: int = setting(
        89_478_485, "larger images become error rows (decompression-bomb guard)"
    )
    max_item_bytes: int = setting(
        64 * 2**20,
        "an item larger than this many bytes becomes an error row without being read whole "
        "(checked from the listing, while reading, or by a packed payload's length)",
    )
    object_store_mb: int = setting(
        768,
        "cap on what the pipeline may hold in the object store, in MiB; 0 = Ray's default",
    )
    max_retries: int = setting(
        3,
        "reruns of a decode, inference or write task whose process or node died (inference "
        "actors are always restarted), bounded so an item that crashes its process fails the "
        "run instead of looping; -1 = forever",
    )
    decode_in_actor: str = setting(
        "auto",
        "decode inside the inference actors, one single-threaded actor per core; auto = for "
        "CPU inference over a packed-Parquet drop, where a separate decode stage only adds an "
        "object-store hop (GPU actors and items fetched one by one keep decode tasks)",
        ("auto", "always", "never"),
    )
    decode_on_device: str = setting(
        "auto",
        "decode JPEGs inside the inference actors on their device, batched (torchvision "
        "decode_jpeg, nvjpeg on a GPU), and resize there; other formats and JPEGs it refuses "
        "take the CPU decoder; auto = GPU actors of an image model that decode (a "
        "packed-Parquet drop, or infer.decode_in_actor=always); always = also on CPU; never = "
        "the CPU decoder only",
        DECODE_ON_DEVICE_MODES,
    )
    pipeline_attempts: int = setting(
        2,
        "whole-pipeline attempts when a node or worker is lost mid-run (Ray Data does not "
        "retry a task whose actor died with its node); each writes a fresh run id; 1 = fail "
        "on the first loss",
    )
    actor_start_timeout_s: int = setting(
        600,
        "an inference pool not placed within this many seconds fails the attempt (the next "
        "one replans for the cluster as it is); 0 = wait forever",
    )
    ensemble: str = setting(
        "auto",
        "label with the mean calibrated probabilities of the cross-fitted fold models instead "
        "of the final model (5x the inference compute); auto = where the small-seed benchmark "
        "measured a gain: fewer than 75 calibration items per class",
        ENSEMBLE_MODES,
    )

    def check(self) -> None:
        """Refuse a bad value of this section before any work starts (one line, the key)."""
        at_least("infer.batch_size", self.batch_size, 1)
        one_of("infer.decode_in_actor", self.decode_in_actor, ("auto", "always", "never"))
        one_of("infer.decode_on_device", self.decode_on_device, DECODE_ON_DEVICE_MODES)
        if self.decode_on_device == "always" and self.decode_in_actor == "never":
            raise ConfigError(
                "infer.decode_on_device: always decodes in the inference actors, which "
                "infer.decode_in_actor=never forbids"
            )
        at_least("infer.num_actors", self.num_actors, 0)
        at_least("infer.num_cpus_per_actor", self.num_cpus_per_actor, 0.0)
        at_least("infer.preprocess_batch_size", self.preprocess_batch_size, 1)
        at_least("infer.topk", self.topk, 1)
        at_least("infer.max_pixels", self.max_pixels, 1)
        at_least("infer.max_item_bytes", self.max_item_bytes, 1)
        one_of("infer.ensemble", self.ensemble, ENSEMBLE_MODES)
        at_least("infer.object_store_mb", self.object_store_mb, 0)
        at_least("infer.max_retries", self.max_retries, -1)
        at_least("infer.pipeline_attempts", self.pipeline_attempts, 1)
        at_least("infer.actor_start_timeout_s", self.actor_start_timeout_s, 0)


@dataclass
class QCConfig:
    """Acceptance thresholds: which labels are accepted without review."""

    target_precision: float = setting(
        0.95,
        "precision the accepted labels of each class must reach, with the qc.bound margin; "
        "higher = fewer labels accepted",
    )
    confidence_level: float = setting(0.95, "one-sided confidence level of the precision bound")
    min_support: int = setting(
        30,
        "classes with fewer calibration predictions than this use the pooled (global) threshold",
    )
    min_confidence: float = setting(
        0.9,
        "not read by any stage (thresholds come from qc.target_precision); checked and kept "
        "so configs that set it still load",
    )
    bound: str = setting(
        "clopper_pearson",
        "the precision bound thresholds must clear: clopper_pearson exact, wilson a little "
        "looser, point = no margin (SageMaker's rule; accepts more)",
        QC_BOUNDS,
    )
    use_reviews: bool = setting(
        True,
        "label runs re-derive the thresholds with the reviewed samples of earlier runs of the"
        " same model",
    )

    def check(self) -> None:
        """Refuse a bad value of this section before any work starts (one line, the key)."""
        one_of("qc.bound", self.bound, QC_BOUNDS)
        in_range("qc.target_precision", self.target_precision, 0, 1, lo_open=True, hi_open=True)
        in_range("qc.confidence_level", self.confidence_level, 0, 1, lo_open=True, hi_open=True)
        at_least("qc.min_support", self.min_support, 1)
        in_range("qc.min_confidence", self.min_confidence, 0.0, 1.0)


@dataclass
class LabelStudioConfig:
    """A Label Studio server the review tasks are pushed to and the reviews pulled from
    (`raylabel review push`, `review.reviewed=labelstudio`); the API key comes from the
    environment only (LABEL_STUDIO_API_KEY), never from a file."""

    url: str | None = setting(
        None, "the server, e.g. http://label-studio:8080 (null: no server, files only)"
    )
    project: str | None = setting(
        None, "project title; null = 'raylabel <drop>' (one project per drop, tasks of every run)"
    )
    timeout_s: float = setting(60.0, "seconds one HTTP request to the server may take")
    batch: int = setting(200, "tasks per import request (inline images make tasks large)")

    def check(self) -> None:
        """Refuse a bad value of this section before any work starts (one line, the key)."""
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ConfigError(
                f"review.labelstudio.url: must start with http:// or https://, got {self.url!r}"
            )
        if self.project is not None and len(self.project.strip()) < 3:
            raise ConfigError("review.labelstudio.project: Label Studio needs 3+ characters")
        positive("review.labelstudio.timeout_s", self.timeout_s)
        at_least("review.labelstudio.batch", self.batch, 1)


@dataclass
class ReviewConfig:
    """The review sample and the active-learning queue of each run; the reviews `evaluate` reads."""

    size: int = setting(
        200,
        "items in each run's stratified review sample (review/sample.*); 0 = none",
    )
    seed: int = setting(
        0,
        "seed of the hash that picks items within a stratum; another seed draws another sample",
    )
    allocation: str = setting(
        "error_weighted",
        "how review.size is spread over the strata (predicted label x confidence bin); "
        "error_weighted puts more where confidence is low",
        ALLOCATIONS,
    )
    min_per_stratum: int = setting(2, "at least this many reviews per stratum (when it has them)")
    bin_edges: list[float] = field(
        default_factory=lambda: [0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0],
        metadata=doc("confidence bins of the strata: from 0.0 to 1.0, strictly increasing"),
    )
    uncertain_size: int = setting(
        100,
        "items in the active-learning queue (review/uncertain.*); 0 = none",
    )
    uncertain_strategy: str = setting(
        "margin_kcenter",
        "the queue: class-balanced, diverse smallest-margin items (margin_kcenter) or the "
        "plain k least-confident",
        UNCERTAIN_STRATEGIES,
    )
    uncertain_pool_factor: float = setting(
        4.0,
        "margin_kcenter: candidates per class = this x an equal share of review.uncertain_size",
    )
    dedup_fraction: float = setting(
        0.05,
        "margin_kcenter: an item closer to a queued one than this share of the pool's median "
        "pairwise cosine distance is a near-duplicate, never queued",
    )
    media: str = setting(
        "inline",
        "what a review task shows: inline (images as resized data: URIs, text as the text "
        "itself; packed and local drops open anywhere), uri (the item's uri, for a Label "
        "Studio project with its own S3 source storage) or presigned (https links to S3 "
        "objects valid for review.presign_ttl_s; items that are not S3 objects of their own "
        "are inlined); text tasks always carry the text",
        REVIEW_MEDIA,
    )
    media_px: int = setting(
        384, "inline images are resized to fit this many pixels on their longer side"
    )
    presign_ttl_s: int = setting(
        7 * 24 * 3600,
        "media=presigned: seconds the https links stay valid (at most 7 days, SigV4's limit)",
    )
    reviewed: str | None = setting(
        None,
        "evaluate: the reviews, a CSV (item_id,true_label) or a Label Studio JSON export; "
        "several files comma-separated (the sample's and the uncertain queue's exports); "
        "'labelstudio' pulls the run's annotations from review.labelstudio's project",
    )
    labelstudio: LabelStudioConfig = field(default_factory=LabelStudioConfig)

    def check(self) -> None:
        """Refuse a bad value of this section before any work starts (one line, the key)."""
        at_least("review.size", self.size, 0)
        one_of("review.allocation", self.allocation, ALLOCATIONS)
        at_least("review.min_per_stratum", self.min_per_stratum, 0)
        at_least("review.uncertain_size", self.uncertain_size, 0)
        one_of("review.uncertain_strategy", self.uncertain_strategy, UNCERTAIN_STRATEGIES)
        at_least("review.uncertain_pool_factor", self.uncertain_pool_factor, 1.0)
        in_range("review.dedup_fraction", self.dedup_fraction, 0.0, 1.0)
        one_of("review.media", self.media, REVIEW_MEDIA)
        at_least("review.media_px", self.media_px, 16)
        in_range("review.presign_ttl_s", self.presign_ttl_s, 1, 7 * 24 * 3600)
        self.labelstudio.check()
        if self.reviewed and self.reviewed.strip() == PULL_REVIEWS and not self.labelstudio.url:
            raise ConfigError(
                "review.reviewed: 'labelstudio' needs review.labelstudio.url (the server)"
            )
        edges = list(self.bin_edges)
        if len(edges) < 2 or edges[0] != 0.0 or edges[-1] != 1.0:
            raise ConfigError("review.bin_edges: must start at 0.0 and end at 1.0")
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise ConfigError("review.bin_edges: must be strictly increasing")


@dataclass
class DriftConfig:
    """Drift watch: each label run against the previous committed run of the same model."""

    enabled: bool = setting(
        True,
        "compare each label run with the previous committed run of the same model (never "
        "fails a run)",
    )
    psi_warn: float = setting(
        0.1,
        "population stability index (class mix, confidence histogram) that warns",
    )
    psi_alert: float = setting(0.25, "... and that alerts (>= drift.psi_warn)")
    confidence_bins: int = setting(10, "equal-width bins of calibrated confidence the PSI compares")
    error_share_warn: float = setting(0.01, "rise in the share of error rows (absolute) that warns")
    error_share_alert: float = setting(0.05, "... and that alerts (>= drift.error_share_warn)")

    def check(self) -> None:
        """Refuse a bad value of this section before any work starts (one line, the key)."""
        positive("drift.psi_warn", self.psi_warn)
        if self.psi_alert < self.psi_warn:
            raise ConfigError(f"drift.psi_alert: must be >= drift.psi_warn, got {self.psi_alert}")
        at_least("drift.confidence_bins", self.confidence_bins, 2)
        in_range("drift.error_share_warn", self.error_share_warn, 0.0, 1.0)
        in_range("drift.error_share_alert", self.error_share_alert, 0.0, 1.0)
        if self.error_share_alert < self.error_share_warn:
            raise ConfigError(
                f"drift.error_share_alert: must be >= drift.error_share_warn, "
                f"got {self.error_share_alert}"
            )

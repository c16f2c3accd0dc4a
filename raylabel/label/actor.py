"""The inference actor: one model per actor, every labeled-row column computed vectorised."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from raylabel.inputs.decode import FetchDecode
from raylabel.inputs.device_decode import DeviceDecode
from raylabel.io.layout import utc_now
from raylabel.io.schema import LABEL_SCHEMA
from raylabel.models.predictor import EnsemblePredictor, Predictor


def _list_array(values: np.ndarray, typ: pa.DataType) -> pa.Array:
    n, k = values.shape
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1), type=typ))


class InferenceActor:
    """Callable class for `map_batches(compute=ActorPoolStrategy(...))`."""

    def __init__(
        self,
        loader: Callable[[], Predictor | EnsemblePredictor],
        run_id: str,
        drop: str,
        topk: int = 3,
        preprocess: Callable[[pa.Table], pa.Table] | None = None,
        thresholds: dict[str, float] | None = None,
        decode_on_device: str = "auto",
    ) -> None:
        self.preprocess = preprocess  # decode in the actor: batches arrive as Arrow tables
        self.predictor = loader()
        self.device_decode = device_decoder(preprocess, self.predictor, decode_on_device)
        card = self.predictor.card
        self.classes = np.asarray(card.classes, dtype=object)
        # thresholds re-derived at labeling time (reviewed items added) override the card's
        self.thresholds = np.asarray(
            [
                thresholds[c] if thresholds and c in thresholds else card.class_threshold(i)
                for i, c in enumerate(card.classes)
            ],
            dtype=np.float32,
        )
        self.model_version = card.model_version
        self.run_id = run_id
        self.drop = drop
        self.topk = min(topk, len(card.classes))
        self.multilabel = card.task == "multilabel"
        self.ml_thresholds = None
        if self.multilabel:
            # imported only for a multilabel card: its statistics pull in scipy, ~0.7 s more
            # of cold start in every actor of every drop
            from raylabel.label.multilabel_rows import card_thresholds

            self.ml_thresholds = card_thresholds(card)

    def __call__(self, batch: dict[str, np.ndarray] | pa.Table) -> pa.Table:
        """The `map_batches` contract: one labeled row per input row plus error and error_stage, so
        items that failed upstream travel on to the sink as error rows and the run's counts still
        reconcile."""
        batch = self._decoded(batch)
        n = len(batch["item_id"])
        error = batch["error"]
        ok = np.array([e is None for e in error], dtype=bool)
        k = self.topk
        n_cls = len(self.classes)
        raw = np.zeros((n, n_cls))
        cal = np.zeros((n, n_cls))
        if ok.any():
            raw[ok], cal[ok] = self.predictor.probabilities(batch, ok)
        if self.ml_thresholds is not None:
            from raylabel.label.multilabel_rows import multilabel_table

            provenance = (self.model_version, self.run_id, self.drop)
            table = multilabel_table(
                batch, raw, cal, ok, self.ml_thresholds, self.classes, provenance
            )
            return self._with_tail(table, batch, error)
        order = np.argsort(-cal, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(cal, order, axis=1)
        label_index = order[:, 0].astype(np.int32)
        confidence = top[:, 0].astype(np.float32)
        raw_conf = raw[np.arange(n), label_index].astype(np.float32)
        second = top[:, 1] if k > 1 else np.zeros(n)
        margin = (top[:, 0] - second).astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = -np.where(cal > 0, cal * np.log(cal), 0.0).sum(axis=1).astype(np.float32)
        threshold = self.thresholds[label_index]
        accepted = (confidence >= threshold) & ok
        now = utc_now()
        columns = {
            "item_id": pa.array([str(v) for v in batch["item_id"]], pa.string()),
            "uri": pa.array([str(v) for v in batch["uri"]], pa.string()),
            "label": pa.array(self.classes[label_index].tolist(), pa.string()),
            "label_index": pa.array(label_index, pa.int32()),
            "confidence": pa.array(confidence, pa.float32()),
            "raw_confidence": pa.array(raw_conf, pa.float32()),
            "margin": pa.array(margin, pa.float32()),
            "entropy": pa.array(entropy, pa.float32()),
            "topk_labels": _list_array(self.classes[order], pa.string()),
            "topk_scores": _list_array(top.astype(np.float32), pa.float32()),
            "accepted": pa.array(accepted, pa.bool_()),
            "threshold": pa.array(threshold, pa.float32()),
            "model_version": pa.array([self.model_version] * n, pa.string()),
            "run_id": pa.array([self.run_id] * n, pa.string()),
            "drop": pa.array([self.drop] * n, pa.string()),
            "labeled_at": pa.array([now] * n, LABEL_SCHEMA.field("labeled_at").type),
        }
        return self._with_tail(pa.table(columns, schema=LABEL_SCHEMA), batch, error)

    @staticmethod
    def _with_tail(table: pa.Table, batch: dict[str, Any], error: Any) -> pa.Table:
        """The text flag, then the error columns the sink splits error rows by."""
        if "truncated" in batch:
            table = table.append_column("truncated", pa.array(batch["truncated"], pa.bool_()))
        table = table.append_column("error", pa.array(list(error), pa.string()))
        return table.append_column("error_stage", pa.array(list(batch["error_stage"]), pa.string()))

    def _decoded(self, batch: dict[str, np.ndarray] | pa.Table) -> dict[str, Any]:
        """The batch as numpy columns, decoded here when the actor decodes (pixels decoded on
        the device stay there, as a tensor, until the forward pass)."""
        if self.preprocess is None:
            return batch  # type: ignore[return-value]
        from ray.data.block import BlockAccessor

        if self.device_decode is None:
            return BlockAccessor.for_block(self.preprocess(batch)).to_batch_format("numpy")
        rows, pixels = self.device_decode(batch)
        out = BlockAccessor.for_block(rows).to_batch_format("numpy")
        out["pixels"] = pixels
        return out


def device_decoder(
    preprocess: Callable[[pa.Table], pa.Table] | None,
    predictor: Predictor | EnsemblePredictor,
    mode: str,
) -> DeviceDecode | None:
    """The device decoder this actor uses (infer.decode_on_device), or None: only an image
    model's own decoding moves, on CUDA for auto, on whatever device the model is for always."""
    if mode == "never" or not isinstance(preprocess, FetchDecode):
        return None
    device = str(predictor.device)
    if predictor.family.feature != "pixels" or (mode == "auto" and not device.startswith("cuda")):
        return None
    return DeviceDecode(preprocess, device)

"""The training worker's in-memory shard cache (issue #7, training throughput): later
epochs must see exactly the first pass's rows, reshuffled, with the same step count."""

from __future__ import annotations

import torch

from raylabel.models.image_task import ShardCache


def _fill(cache: ShardCache, n: int, bs: int) -> None:
    for start in range(0, n, bs):
        idx = torch.arange(start, min(n, start + bs))
        x = idx.view(-1, 1, 1, 1).expand(-1, 3, 2, 2).to(torch.uint8)
        cache.record({"x": x, "sample_weight": idx.float()}, idx)
    cache.seal()


def test_cached_epochs_hold_the_same_rows_reshuffled() -> None:
    cache = ShardCache(cap_bytes=2**20)
    _fill(cache, n=70, bs=16)
    assert cache.full is not None
    seen = [list(zip(*cache.batches(16, shuffle_seed=s), strict=True)) for s in (1, 2)]
    orders = []
    for inputs, ys in seen:
        assert len(ys) == 5  # ceil(70 / 16) steps, as streamed
        y = torch.cat(ys)
        assert sorted(y.tolist()) == list(range(70))
        x = torch.cat([i["x"] for i in inputs])
        w = torch.cat([i["sample_weight"] for i in inputs])
        assert torch.equal(x[:, 0, 0, 0].long(), y)  # rows stay whole
        assert torch.equal(w.long(), y)
        orders.append(y.tolist())
    assert orders[0] != orders[1]  # a new order each epoch
    again = torch.cat(list(zip(*cache.batches(16, shuffle_seed=1), strict=True))[1])
    assert again.tolist() == orders[0]  # deterministic per seed


def test_validation_order_is_kept() -> None:
    cache = ShardCache(cap_bytes=2**20)
    _fill(cache, n=33, bs=8)
    ys = [y for _, y in cache.batches(8, shuffle_seed=None)]
    assert torch.cat(ys).tolist() == list(range(33))


def test_a_shard_over_the_cap_is_not_kept() -> None:
    cache = ShardCache(cap_bytes=100)  # 12 bytes of pixels + 4 of weight per row
    _fill(cache, n=40, bs=8)
    assert cache.full is None and not cache.parts

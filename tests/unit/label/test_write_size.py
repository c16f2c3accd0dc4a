"""How many rows each write task gathers: whole files for big drops, parts for small ones."""

from raylabel.label.pipeline import MIN_ROWS_PER_WRITE, WRITES_PER_DROP, rows_per_write


def test_a_big_drop_writes_whole_files() -> None:
    assert rows_per_write(50_000, 1_000_000) == 50_000
    assert rows_per_write(50_000, 50_000 * WRITES_PER_DROP) == 50_000


def test_a_small_drop_is_written_in_parts_that_keep_pace_with_labeling() -> None:
    assert rows_per_write(50_000, 20_000) == 2_500  # eight parts, not one file at the end
    assert rows_per_write(50_000, 100_000) == 12_500


def test_parts_never_shrink_below_the_floor_or_past_an_explicit_setting() -> None:
    assert rows_per_write(50_000, 200) == MIN_ROWS_PER_WRITE
    assert rows_per_write(50_000, 0) == MIN_ROWS_PER_WRITE
    assert rows_per_write(16, 200) == 16  # a user's small files stay small

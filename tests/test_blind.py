"""The blind set's scores stay at or above what they were when this test was written (see README):
a change that makes the reader answer more questions wrongly fails here."""

import pytest

from tests.blind_eval import score


@pytest.mark.parametrize(
    ("part", "min_right", "max_wrong"),
    [("dev", 0.90, 0.04), ("heldout", 0.58, 0.135)],
)
def test_blind_set_scores(part: str, min_right: float, max_wrong: float) -> None:
    c = score(part)["ALL"]
    n = sum(c.values())
    assert c["right"] / n >= min_right, dict(c)
    assert c["wrong"] / n <= max_wrong, dict(c)

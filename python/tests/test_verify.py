"""`imreg.verify` runs the registered checks and returns their records."""
from __future__ import annotations

import imreg


def test_verify_returns_the_check_records():
    ids = imreg.check_ids()
    assert len(ids) > 10 and len(set(ids)) == len(ids)
    records = imreg.verify(only=["ad.hvp-vs-dense"])
    assert [r.id for r in records] == ["ad.hvp-vs-dense"]
    r = records[0]
    assert r.passed, r
    assert r.claim and r.expected and r.measured and r.seconds >= 0

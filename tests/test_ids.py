from service.db.types import uuid7


def test_uuid7_is_version_7_and_strictly_increasing():
    ids = [uuid7() for _ in range(10_000)]
    assert all(i.version == 7 for i in ids[:10])
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)

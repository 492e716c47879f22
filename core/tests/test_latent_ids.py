"""LatentIds: the compact set of latents the stages keep (sorted index arrays per source)."""

from __future__ import annotations

import pickle
import random

from autointerp.types import LatentIds, LatentRef


def refs(pairs: list[tuple[str, int]]) -> list[LatentRef]:
    return [LatentRef(s, i) for s, i in pairs]


def test_behaves_like_the_set_of_its_latents() -> None:
    rng = random.Random(0)
    latents = refs([(rng.choice("ab"), rng.randrange(5000)) for _ in range(3000)])
    ids, plain = LatentIds(latents), set(latents)
    assert ids == plain and plain == ids and len(ids) == len(plain)
    probes = refs([(rng.choice("abc"), rng.randrange(5000)) for _ in range(2000)])
    assert [p in ids for p in probes] == [p in plain for p in probes]
    assert "a:1" not in ids and 3 not in ids  # not a LatentRef: simply absent
    assert list(ids) == sorted(plain, key=lambda r: (r.source, r.index))
    other = LatentIds(probes)
    assert ids & other == plain & set(probes)  # numpy intersection
    assert ids & set(probes) == plain & set(probes) == set(probes) & ids
    assert ids - other == plain - set(probes) and ids | other == plain | set(probes)
    known: set[LatentRef] = set()
    known.update(ids)
    assert known == plain
    assert pickle.loads(pickle.dumps(ids)) == ids  # crosses to executor workers


def test_empty_and_from_indices() -> None:
    assert LatentIds() == set() and not LatentIds() and len(LatentIds()) == 0
    ids = LatentIds.from_indices({"s": [5, 1, 5, 3], "t": [], "u": range(2)})
    assert list(ids) == refs([("s", 1), ("s", 3), ("s", 5), ("u", 0), ("u", 1)])
    assert LatentRef("t", 0) not in ids and repr(ids) == "LatentIds(5 latents in 2 sources)"


def test_sources_union_and_long_iteration() -> None:
    big = LatentIds.from_indices({"b": range(0, 300_000, 2), "a": [7]})
    assert big.sources == ["a", "b"] and len(big) == 150_001
    seen = list(big)  # iterated a block at a time, still in (source, index) order
    assert seen[0] == LatentRef("a", 7) and seen[-1] == LatentRef("b", 299_998)
    assert [r.index for r in seen[1:]] == list(range(0, 300_000, 2))
    more = big | LatentIds(refs([("b", 1), ("c", 0), ("b", 2)]))  # numpy union per source
    assert len(more) == 150_003 and isinstance(more, LatentIds)
    assert LatentRef("b", 1) in more and LatentRef("c", 0) in more
    assert (big | {LatentRef("a", 8)}) == set(big) | {LatentRef("a", 8)}

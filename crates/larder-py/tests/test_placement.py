"""Keys land on the same servers as with pylibmc, for pylibmc's default (modula over
one-at-a-time), ketama, ketama_weighted and the other placements larder honours."""

import larder
import pytest

pylibmc = pytest.importorskip("pylibmc")

KEYS = [f"key:{i}" for i in range(300)] + ["é", "\u2603snow", "a" * 250]

PLACEMENTS = [
    {},
    {"ketama": True},
    {"ketama_weighted": True},
    {"distribution": "consistent"},
    {"hash": "crc"},
    {"hash": "md5"},
    {"ketama": True, "hash": "md5"},
    {"ketama": True, "hash": "crc"},
    {"distribution": "consistent weighted", "hash": "md5"},
    {"ketama": True, "ketama_hash": "crc"},
]


@pytest.mark.parametrize("weights", [(1, 1, 1), (1, 3, 2)], ids=["equal", "weighted"])
@pytest.mark.parametrize("behaviors", PLACEMENTS, ids=repr)
def test_keys_land_where_pylibmc_puts_them(servers, behaviors, weights):
    specs = [f"{s.spec}:{w}" if w != 1 else s.spec for s, w in zip(servers, weights)]
    lmc = larder.Client(specs, behaviors=behaviors)
    pmc = pylibmc.Client(specs, behaviors=behaviors)
    indices = [pmc.hash(k) for k in KEYS]
    assert [lmc.hash(k) for k in KEYS] == indices
    # crc hashes to 15 bits: on a weighted continuum (32-bit md5 points) every key takes the
    # first point, so one server; elsewhere the keys must spread for the test to mean much.
    if not (behaviors.get("hash") == "crc" and behaviors.get("ketama") and weights != (1, 1, 1)):
        assert len(set(indices)) == 3
    assert lmc.set_multi({k: i for i, k in enumerate(KEYS)}) == []
    for i, (key, index) in enumerate(zip(KEYS, indices)):
        found = [s.raw(key.encode()) is not None for s in servers]
        assert found == [j == index for j in range(3)], key
    assert pmc.get_multi(KEYS) == {k: i for i, k in enumerate(KEYS)}
    assert [lmc.get(k) for k in KEYS[:20]] == list(range(20))


def test_ketama_default_port_and_unix_names(servers, tmp_path):
    # The continuum names a server "host" on port 11211 and "host:port" otherwise; both
    # rings are computed without any network traffic.
    specs = ["10.0.0.1", "10.0.0.2:11212", "10.0.0.3:11211:2"]
    for behaviors in ({"ketama": True}, {"ketama_weighted": True}, {}):
        lmc = larder.Client(specs, behaviors=behaviors)
        pmc = pylibmc.Client(specs, behaviors=behaviors)
        assert [lmc.hash(k) for k in KEYS] == [pmc.hash(k) for k in KEYS]
    unix = [str(tmp_path / "a.sock"), str(tmp_path / "b.sock")]
    lmc = larder.Client(unix, behaviors={"ketama": True})
    pmc = pylibmc.Client(unix, behaviors={"ketama": True})
    assert [lmc.hash(k) for k in KEYS] == [pmc.hash(k) for k in KEYS]


@pytest.mark.parametrize(
    "behaviors",
    [{"hash": "fnv1a_32"}, {"distribution": "random"}, {"distribution": "consistent weighted"}],
    ids=repr,
)
def test_placements_larder_cannot_honour_are_refused(servers, behaviors):
    specs = [s.spec for s in servers]
    with pytest.raises(larder.NotSupportedError):
        larder.Client(specs, behaviors=behaviors)
    # One server takes every key: nothing is hashed, so any placement is honoured.
    assert larder.Client(specs[:1], behaviors=behaviors).set("k", 1)

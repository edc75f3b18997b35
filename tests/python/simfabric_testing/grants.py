"""Grants a test's own sim gets from the ring (protocol/grants.md): a
Python peer registered as a sim makes entities its own through the ring's
API, as a simserver would, and sends the signed grants it is answered."""

from simfabric_testing import state as sd


def own(member, keys, sim: str, path: str) -> bytes:
    """Create PATH on MEMBER (a homeserver) with SIM, registered with KEYS,
    as its authority at epoch 1; the ring's grant of it, binary."""
    with member.client(keys=keys) as client:
        created = client.call("entity.create", path=path, authority=sim)
    assert created["grant"] is not None, "the ring has no signing key"
    return sd.grant_from_json(created["grant"])


def regrant(member, keys, sim: str, path: str) -> tuple[int, bytes]:
    """Give PATH up and claim it again as SIM: its next epoch and the
    ring's grant of it, binary."""
    with member.client(keys=keys) as client:
        client.call("authority.release", path=path, sim=sim)
        granted = client.call("authority.request", path=path, sim=sim)
    assert granted["granted"] is True and granted["grant"] is not None, granted
    return granted["epoch"], sd.grant_from_json(granted["grant"])

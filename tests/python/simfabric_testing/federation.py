"""Instances that know each other (protocol/federation.md section 2): each
ring's members get an instance name and a federation endpoint, and every
member lists the members of every other instance."""

from simfabric_testing.client import ApiClient
from simfabric_testing.keys import KeyPair
from simfabric_testing.daemon import free_port


def federate(instances: dict) -> None:
    """INSTANCES is {name: [homeserver Daemons]} (not started): configure
    each member for federation with all the other instances."""
    for name, members in instances.items():
        for member in members:
            member.instance = name
            member.federation_endpoint = f"tcp://127.0.0.1:{free_port()}"
            member.section["instance"] = name
            member.section["federation"] = member.federation_endpoint
    for name, members in instances.items():
        for member in members:
            member.peers = {other: others for other, others in instances.items()
                            if other != name}
            member.write_config()


def fed_client(member, keys: KeyPair, timeout: float = 5.0) -> ApiClient:
    """A client of MEMBER's federation socket speaking with KEYS (those of
    a member of a peer instance, or of anyone the test wants refused)."""
    return ApiClient(member.federation_endpoint, member.keys.public, keys=keys,
                     timeout=timeout)

"""Instances that know each other (protocol/federation.md section 2): each
ring's members get an instance name and a federation endpoint, and every
member lists the members of every other instance."""

import threading
import time

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


def next_event(client, kind: str, timeout: float = 15.0) -> dict:
    """The next event of KIND ("ask", "fenced", ...) a sim API CLIENT
    subscribed to receives, skipping others."""
    deadline = time.monotonic() + timeout
    while True:
        event = client.next_event(timeout=max(0.1, deadline - time.monotonic()))
        if event["event"] == kind:
            return event


def claim_in_background(sim, path: str, timeout: float = 40.0, **args):
    """entity.claim of PATH from SIM's API on a thread: (thread, landed),
    landed["reply"] its whole reply once the thread is joined."""
    landed = {}

    def claim():
        with sim.client(timeout=timeout) as game:
            landed["reply"] = game.request("entity.claim", path=path, **args)

    thread = threading.Thread(target=claim)
    thread.start()
    return thread, landed

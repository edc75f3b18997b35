"""Two simulation servers on separate hosts (network namespaces on one
bridge, the ring in the root namespace): with 10% random loss in both
directions (nftables in each sim's namespace) and delay, reordering and
duplication from a userspace relay in front of the receiver, every replica
still converges to the newest state of its entity, because an update
stays due until a datagram carrying it is acknowledged."""

import subprocess

import pytest

from simfabric_testing import make_ring, wait_registered
from simfabric_testing import netns
from simfabric_testing.daemon import free_port
from simfabric_testing.relay import UdpRelay

from simfabric_testing.wait import wait_for
from test_sim_stream import counters

pytestmark = pytest.mark.skipif(not netns.available(), reason="needs root and iproute2")


@pytest.fixture
def hosts():
    hosts = netns.Hosts(2, prefix="sfs")
    yield hosts
    hosts.close()


def lossy(hosts, index: int, port: int, percent: int):
    """Drop PERCENT% of UDP datagrams to PORT arriving on host INDEX."""
    rules = ("table inet sfloss {\n  chain input {\n"
             "    type filter hook input priority 0;\n"
             f"    udp dport {port} numgen random mod 100 < {percent} drop\n  }}\n}}\n")
    subprocess.run(hosts.exec_prefix(index) + ["nft", "-f", "-"], input=rules, text=True,
                   check=True, capture_output=True)


def test_replicas_converge_through_loss_delay_reordering_and_duplication(hosts, tmp_path):
    root = f"10.77.{hosts.net}.254"
    ring = make_ring(tmp_path, 1)
    hs = ring[0]
    for attribute in ("endpoint", "raft_endpoint", "events_endpoint"):
        setattr(hs, attribute, getattr(hs, attribute).replace("127.0.0.1", root))
    hs.section.update(api=hs.endpoint, raft=hs.raft_endpoint, events=hs.events_endpoint)
    hs.write_config()
    relay = None
    sims = []
    try:
        hs.start()
        ports = {}
        for index, name in enumerate(["sim1", "sim2"]):
            address = hosts.address(index)
            sim = netns.NetnsDaemon(hosts, index, "simserver", name, tmp_path / name,
                                    extra={"heartbeat": 200})
            ports[name] = free_port()
            sim.endpoint = f"tcp://{address}:{free_port()}"
            sim.state_endpoint = f"udp://{address}:{ports[name]}"
            sim.section.update(api=sim.endpoint, state=sim.state_endpoint)
            sim.section.pop("handoff")
            sim.ring = ring
            sims.append(sim)
        sim1, sim2 = sims
        # sim2 is reached through the relay: it registers the relay's address.
        relay = UdpRelay((root, 0), (hosts.address(1), ports["sim2"]),
                         delay_ms=(1, 15), duplicate=0.05, seed=7)
        sim2.section["state_public"] = f"udp://{root}:{relay.address[1]}"
        for sim in sims:
            sim.write_config()
            sim.start()
        lossy(hosts, 1, ports["sim2"], 10)  # sim1's updates to sim2
        lossy(hosts, 0, ports["sim1"], 10)  # sim2's ACKs to sim1
        wait_registered(sims)

        paths = [f"/world/z{n:03d}" for n in range(150)]
        with sim1.client() as game:
            for path in paths:
                game.call("entity.create", path=path, state="0")
            for round_ in range(1, 11):
                for path in paths:
                    game.call("entity.update", path=path, state=f"round {round_}")

        def converged():
            with sim2.client() as reader:
                page = reader.call("entity.list", prefix="/world/", limit=1000)["entities"]
            return len(page) == 150 and all(
                (e["seq"], e["state"], e["epoch"]) == (11, "round 10", 1) for e in page)

        wait_for(converged, timeout=60, what="every replica at its newest state")

        # Traced updates (trace.md, Case 3) through the same loss: each one
        # completes with the ACK of a datagram that carried it, the one sent
        # again when the first was lost.
        with sim1.client() as game:
            traces = [game.call("entity.update", path=path, state="traced", trace=True)["trace"]
                      for path in paths[:40]]

            def acked():
                return all(any(r["msg"] == "ack" for r in game.call("trace", trace=t)["records"])
                           for t in traces)

            wait_for(acked, timeout=30, what="an ACK for every traced update")
        sent, received = counters(sim1), counters(sim2)
        # The impairments happened, and were absorbed:
        assert sent["datagrams_lost"] > 0 and sent["updates_requeued"] > 0
        assert received["drop_replay"] > 0  # the relay's duplicates
        assert relay.duplicated > 0
        assert received["drop_forged"] == 0 and received["drop_malformed"] == 0
    finally:
        codes = {sim.name: sim.stop() for sim in sims}
        codes["hs1"] = hs.stop()
        if relay:
            relay.close()
    assert set(codes.values()) == {0}, codes

"""Several hosts on one machine: network namespaces joined by a bridge.

Each host is a namespace with one veth into a switch namespace that holds
the bridge; the root namespace joins the bridge too, so tests and tools
here reach every host by its own address, as they would on a LAN. Links can
be cut and healed (link down / up) and made lossy (an nftables rule in a
host's namespace). Needs root and iproute2; everything made is removed on
close.

    python3 -m simfabric_testing.netns --duration 30   # a ring of three
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from simfabric_testing.daemon import Daemon, make_ring, wait_leader
from simfabric_testing.paths import binary

SUBNET = "10.77.{net}"


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def available() -> bool:
    """True if this process may create namespaces."""
    return os.geteuid() == 0 and shutil.which("ip") is not None


class Hosts:
    """COUNT hosts named PREFIX1.. on a bridge, addresses 10.77.NET.1..,
    the root namespace at 10.77.NET.254."""

    def __init__(self, count: int, prefix: str = "sfh", net: int = None):
        self.net = net if net is not None else (os.getpid() % 200) + 20
        self.prefix = f"{prefix}{self.net}"
        self.switch = f"{self.prefix}sw"
        self.names = [f"{self.prefix}h{n}" for n in range(1, count + 1)]
        self.made = []
        try:
            self._build()
        except Exception:
            self.close()
            raise

    def address(self, index: int) -> str:
        return f"10.77.{self.net}.{index + 1}"

    def _build(self):
        _ip("netns", "add", self.switch)
        self.made.append(("netns", self.switch))
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        _ip("-n", self.switch, "link", "set", "lo", "up")
        for index, name in enumerate(self.names):
            _ip("netns", "add", name)
            self.made.append(("netns", name))
            _ip("-n", name, "link", "set", "lo", "up")
            _ip("link", "add", f"{name}a", "type", "veth", "peer", "name", f"{name}b")
            _ip("link", "set", f"{name}a", "netns", name)
            _ip("link", "set", f"{name}b", "netns", self.switch)
            _ip("-n", name, "addr", "add", f"{self.address(index)}/24", "dev", f"{name}a")
            _ip("-n", name, "link", "set", f"{name}a", "up")
            _ip("-n", self.switch, "link", "set", f"{name}b", "master", "br0")
            _ip("-n", self.switch, "link", "set", f"{name}b", "up")
        # The root namespace on the bridge, for tests and fabricctl.
        root = f"{self.prefix}r"
        _ip("link", "add", f"{root}a", "type", "veth", "peer", "name", f"{root}b")
        self.made.append(("link", f"{root}a"))
        _ip("link", "set", f"{root}b", "netns", self.switch)
        _ip("addr", "add", f"10.77.{self.net}.254/24", "dev", f"{root}a")
        _ip("link", "set", f"{root}a", "up")
        _ip("-n", self.switch, "link", "set", f"{root}b", "master", "br0")
        _ip("-n", self.switch, "link", "set", f"{root}b", "up")

    def cut(self, index: int):
        """Take host INDEX off the network (its link goes down)."""
        _ip("-n", self.switch, "link", "set", f"{self.names[index]}b", "down")

    def heal(self, index: int):
        _ip("-n", self.switch, "link", "set", f"{self.names[index]}b", "up")

    def exec_prefix(self, index: int) -> list:
        return ["ip", "netns", "exec", self.names[index]]

    def close(self):
        for kind, name in reversed(self.made):
            if kind == "netns":
                _ip("netns", "delete", name, check=False)
            else:
                _ip("link", "delete", name, check=False)
        self.made = []


class NetnsDaemon(Daemon):
    """A homeserver that runs inside a host namespace."""

    def __init__(self, hosts: Hosts, index: int, *args, **kwargs):
        self.hosts = hosts
        self.index = index
        super().__init__(*args, **kwargs)

    def command(self):
        return self.hosts.exec_prefix(self.index) + [str(binary(self.kind)), "--config",
                                                    str(self.config)]


def make_netns_ring(folder, hosts: Hosts, extra: dict | None = None):
    """A ring with member N on host N, each bound to its host's address."""
    members = make_ring(folder, len(hosts.names), extra=extra,
                        daemon=lambda n, *a, **k: NetnsDaemon(hosts, n - 1, *a, **k))
    for index, member in enumerate(members):
        address = hosts.address(index)
        for attribute in ("endpoint", "raft_endpoint", "events_endpoint"):
            value = getattr(member, attribute)
            setattr(member, attribute, value.replace("127.0.0.1", address))
        member.section["api"] = member.endpoint
        member.section["raft"] = member.raft_endpoint
        member.section["events"] = member.events_endpoint
    for member in members:
        member.write_config()
    return members


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--duration", type=float, default=0,
                        help="stop after this many seconds (default: until Ctrl-C)")
    options = parser.parse_args()
    if not available():
        sys.exit("netns-ring: needs root and iproute2")
    folder = Path(tempfile.mkdtemp(prefix="simfabric-netns."))
    hosts = Hosts(options.members)
    members = []
    try:
        members = make_netns_ring(folder, hosts)
        for member in members:
            member.start()
            print(f"netns-ring: {member.name} on host {hosts.names[member.index]} "
                  f"at {hosts.address(member.index)} (api {member.endpoint})", flush=True)
        leader, _ = wait_leader(members)
        print(f"netns-ring: leader {leader}; try:\n"
              f"  {binary('fabricctl')} status --server {members[0].endpoint} "
              f"--server-key {members[0].keys.public_path}", flush=True)
        stop = time.monotonic() + options.duration if options.duration else None
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while stop is None or time.monotonic() < stop:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        for member in members:
            code = member.stop()
            print(f"netns-ring: {member.name} exited with {code}", flush=True)
        hosts.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

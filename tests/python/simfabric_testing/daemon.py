"""Start and stop simfabric daemons as real processes."""

import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from simfabric_testing.client import ApiClient, NoReply
from simfabric_testing.keys import KeyPair, read_key_pair, write_key_pair
from simfabric_testing.paths import binary


class DaemonFailed(Exception):
    """A daemon exited when it should be running, or did not become ready."""


_next_port = None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and stays clear of the
    kernel's ephemeral range (32768-60999 here), so an outgoing connection
    cannot take it before a daemon (re)binds it. Ports are handed out in
    turn from a start that depends on the process id, so parallel runs
    rarely meet."""
    import socket

    global _next_port
    if _next_port is None:
        _next_port = 20000 + (os.getpid() * 37) % 12000
    for _ in range(12000):
        port = _next_port
        _next_port = 20000 + (_next_port - 20000 + 1) % 12000
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError("no free port in 20000-31999")


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that is free now, from the same range and
    turn as free_port."""
    import socket

    for _ in range(100):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError("no free UDP port")


def _zpl(sections: dict) -> str:
    lines = []
    for section, keys in sections.items():
        lines.append(section)
        for key, value in keys.items():
            lines.append(f'    {key} = "{value}"')
    return "\n".join(lines) + "\n"


def write_config(path: Path, sections: dict) -> Path:
    """Write SECTIONS ({section: {key: value}}) as a ZPL file."""
    path.write_text(_zpl(sections))
    return path


def make_ring(folder, size: int = 3, extra: dict | None = None,
              daemon=None) -> list["Daemon"]:
    """SIZE homeservers that know each other as one ring (not started).
    DAEMON (n, kind, name, folder, extra=, raft_id=) makes each member; by
    default a local Daemon."""
    folder = Path(folder)
    if daemon is None:
        def daemon(n, *args, **kwargs):
            return Daemon(*args, **kwargs)
    members = [daemon(n, "homeserver", f"hs{n}", folder / f"hs{n}", extra=extra, raft_id=n)
               for n in range(1, size + 1)]
    # The leader decides who is an administrator: every member shares one
    # admins folder.
    admin = write_key_pair(folder / "admins", "admin")
    for member in members:
        member.ring = members
        member.admin = admin
        member.section["admins"] = str(folder / "admins")
        member.write_config()
    return members


class Daemon:
    """One homeserver or simserver process with its keys and config.

    KIND is "homeserver" or "simserver". The daemon gets a key pair and a
    config file in FOLDER; EXTRA adds keys to its section.
    """

    SECTION = {"homeserver": "homeserver", "simserver": "sim"}

    def __init__(self, kind: str, name: str, folder, extra: dict | None = None,
                 raft_id: int = 1):
        self.kind = kind
        self.name = name
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keys: KeyPair = write_key_pair(self.folder, name)
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        section = {
            "name": name,
            "api": self.endpoint,
            "secret_key": self.keys.secret_path.name,
        }
        if kind == "homeserver":
            self.raft_id = raft_id
            self.raft_endpoint = f"tcp://127.0.0.1:{free_port()}"
            # One administrator key per daemon folder, for tests that need it.
            self.admin = write_key_pair(self.folder / "admins", "admin")
            self.events_endpoint = f"tcp://127.0.0.1:{free_port()}"
            section.update({"id": raft_id, "raft": self.raft_endpoint, "data": "data",
                            "admins": "admins", "events": self.events_endpoint})
        else:
            self.state_endpoint = f"udp://127.0.0.1:{free_udp_port()}"
            self.handoff_endpoint = f"tcp://127.0.0.1:{free_port()}"
            section["state"] = self.state_endpoint
            section["handoff"] = self.handoff_endpoint
        section.update(extra or {})
        self.section = section
        self.ring: list["Daemon"] = []
        # Peer instances (federation.md section 2): {instance: [members]}.
        self.peers: dict[str, list["Daemon"]] = {}
        self.write_config()
        self.log_path = self.folder / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def write_config(self):
        """(Re)write the config file, with ring members if any."""
        sections = {self.SECTION[self.kind]: self.section, "log": {"level": "info"}}
        # More sections of the same file (for example "balance").
        sections.update(getattr(self, "sections", {}))
        text = _zpl(sections)
        if self.ring:
            text += "ring\n    member\n"
            for member in self.ring:
                text += (f"        {member.name}\n"
                         f"            id = {member.raft_id}\n"
                         f'            raft = "{member.raft_endpoint}"\n'
                         f'            api = "{member.endpoint}"\n'
                         f'            key = "{member.keys.public_path}"\n')
                if getattr(member, "events_endpoint", None):
                    text += f'            events = "{member.events_endpoint}"\n'
        if self.peers:
            text += "federation\n"
            for instance, members in self.peers.items():
                text += f"    {instance}\n        member\n"
                for member in members:
                    text += (f"            {member.name}\n"
                             f'                federation = "{member.federation_endpoint}"\n'
                             f'                key = "{member.keys.public_path}"\n')
        self.config = self.folder / f"{self.name}.cfg"
        self.config.write_text(text)

    def command(self) -> list:
        """The command line that runs this daemon."""
        return [str(binary(self.kind)), "--config", str(self.config)]

    def start(self, timeout: float = 10.0, keys: KeyPair | None = None):
        """Start the process and wait until it answers status (asked as
        KEYS, or as a fresh principal). A simulation server of a running
        ring is admitted the way an operator does it: the ring's
        administrator issues it a join token (grants.md section 6), unless
        its section names one."""
        command = self.command()
        if self.kind == "simserver" and self.ring and "token" not in self.section:
            token = admit(self.ring, self.name, required=False)
            if token:
                # A flag, not a rewrite of the config: a test may have
                # edited the file (a ring section without events, say).
                # Used once: a later start of the same sim needs none.
                command += ["--token", token]
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            command,
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        with self.client(keys=keys, timeout=0.2) as probe:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise DaemonFailed(f"{self.name} exited with {self.process.returncode}: {self.log()}")
                try:
                    if probe.request("status")["ok"]:
                        return self
                except NoReply:
                    pass
        raise DaemonFailed(f"{self.name} did not answer status in {timeout} s: {self.log()}")

    def client(self, keys: KeyPair | None = None, timeout: float = 5.0) -> ApiClient:
        """A new API client of this daemon (a fresh principal unless KEYS)."""
        return ApiClient(self.endpoint, self.keys.public, keys=keys, timeout=timeout)

    def subscribe(self, prefix: str = "") -> "zmq.Socket":
        """A SUB socket on this homeserver's events, CURVE, subscribed to
        PREFIX."""
        import zmq

        socket = zmq.Context.instance().socket(zmq.SUB)
        socket.linger = 0
        socket.curve_serverkey = self.keys.public
        socket.curve_publickey, socket.curve_secretkey = zmq.curve_keypair()
        socket.setsockopt_string(zmq.SUBSCRIBE, prefix)
        socket.connect(self.events_endpoint)
        return socket

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the process and return its exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        code = self.process.returncode
        self.process = None
        return code

    def kill(self) -> int:
        return self.stop(signal.SIGKILL)


def admit(ring, sim: str, ttl_ms: int = 600_000, required: bool = True,
          timeout: float = 15.0) -> str | None:
    """A one-use join token admitting SIM to RING (a homeserver Daemon or a
    list of them), issued by the ring's administrator (token.create) on a
    live member, retried through elections until TIMEOUT. Without a live
    member, None if not REQUIRED."""
    members = ring if isinstance(ring, list) else [ring]
    admin = read_key_pair(members[0].admin.secret_path)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        live = [m for m in members if m.kind == "homeserver" and m.alive()]
        if not live and not required:
            return None
        for member in live:
            with member.client(keys=admin, timeout=2) as client:
                try:
                    reply = client.request("token.create", sim=sim, ttl_ms=ttl_ms)
                except NoReply as error:
                    last = error
                    continue
            if reply.get("ok"):
                return reply["token"]
            last = reply["error"]
            if last["code"] not in ("not_leader", "unavailable", "timeout"):
                raise DaemonFailed(f"token.create for {sim} refused: {last}")
        time.sleep(0.05)
    if required:
        raise DaemonFailed(f"no ring member issued a join token for {sim}: {last}")
    return None


def make_sims(folder, ring, count: int = 2, extra: dict | None = None,
              names=None) -> list["Daemon"]:
    """COUNT simulation servers of RING (a list of homeserver Daemons),
    each with a state endpoint on loopback (not started)."""
    folder = Path(folder)
    names = names or [f"sim{n}" for n in range(1, count + 1)]
    sims = []
    for name in names:
        sim = Daemon("simserver", name, folder / name, extra=extra)
        sim.ring = ring
        sim.write_config()
        sims.append(sim)
    return sims


def wait_registered(sims, timeout: float = 15.0, peers: bool = True):
    """Wait until every sim is registered with its ring and, if PEERS,
    knows every other sim as a peer with a session from it pending or
    established. Returns their statuses."""
    deadline = time.monotonic() + timeout
    statuses = {}
    while time.monotonic() < deadline:
        statuses = {}
        for sim in sims:
            with sim.client(timeout=1) as client:
                try:
                    statuses[sim.name] = client.call("status")
                    if peers:
                        known = {p["sim"] for p in client.call("counters")["peers"]}
                        statuses[sim.name]["peers"] = known
                except NoReply:
                    pass
        done = len(statuses) == len(sims) and all(s["registered"] for s in statuses.values())
        if done and peers:
            names = {sim.name for sim in sims}
            done = all(names - {name} <= s["peers"] for name, s in statuses.items())
        if done:
            return statuses
        time.sleep(0.05)
    raise DaemonFailed(f"sims not registered in {timeout} s: {statuses}")


@contextmanager
def running(ring, sims=()):
    """Start RING's members and then SIMS, wait until the sims are
    registered with each other, and afterwards stop every one of them,
    even when a start failed, checking that each exited 0."""
    daemons = list(sims) + list(ring)
    try:
        for member in ring:
            member.start()
        for sim in sims:
            sim.start()
        if sims:
            wait_registered(sims)
        yield
    finally:
        codes = {daemon.name: daemon.stop() for daemon in daemons}
    assert set(codes.values()) == {0}, \
        {daemon.name: daemon.log() for daemon in daemons if codes[daemon.name]}


def ring_statuses(members) -> dict:
    """status of every live member, by name."""
    result = {}
    for member in members:
        if member.alive():
            with member.client(timeout=1) as client:
                try:
                    result[member.name] = client.call("status")
                except NoReply:
                    pass
    return result


def wait_leader(members, timeout: float = 15.0, exclude=()):
    """Wait until every live member names the same leader; return its
    name and the statuses."""
    deadline = time.monotonic() + timeout
    seen = {}
    while time.monotonic() < deadline:
        seen = ring_statuses([m for m in members if m.name not in exclude])
        leaders = {s["leader"] for s in seen.values()}
        roles = [s["role"] for s in seen.values()]
        if len(leaders) == 1 and None not in leaders and roles.count("leader") == 1:
            (leader,) = leaders
            return leader, seen
        time.sleep(0.05)
    raise DaemonFailed(f"no agreed leader in {timeout} s: {seen}")


def leader_client(members, keys: KeyPair | None = None, timeout: float = 5.0,
                  wait: float = 15.0) -> ApiClient:
    """A client of the ring's current leader: requests reach the member
    that commits them without a forwarding hop, which keeps an authority
    transfer at the hop table's count (DESIGN.md section 6)."""
    name, _ = wait_leader(members, timeout=wait)
    member = next(m for m in members if m.name == name)
    return member.client(keys=keys, timeout=timeout)

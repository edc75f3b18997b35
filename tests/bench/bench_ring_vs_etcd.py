"""The homeserver ring beside etcd 3.4, driven by one Python load generator.

Both systems run as 3 members on 127.0.0.1 with their default durability
and timers, their data on the same disk (a temporary folder in build/).
The same thread-per-client load generator drives each system's leader:

    write  1, 16, 64 clients   simfabric entity.create (unique path, a
                               100-byte checkpoint); etcd put (unique key,
                               100-byte value)
    read   16, 64 clients      simfabric entity.get (linearizable);
                               etcd get (linearizable) of existing keys

Each client is one thread with its own connection (a pyzmq DEALER with
CURVE, or an etcd3 gRPC channel with a private subchannel pool, so one
TCP connection each) doing one request at a time. For each case: completed
operations, throughput, latency p50/p99, CPU of the three server processes
(/proc/PID/stat) and of this process (getrusage). Then failover: SIGKILL
the leader under no load and time the next successful write through the
survivors.

The machine drifts (other work, the hypervisor), so with --repeats N the
two systems run N rounds each, alternating which goes first, and every
figure reported is the median of its N rounds; each ratio is also shown
round by round (the ratio of round k is taken between the two systems'
runs of round k, which sat next to each other in time).

Usage: bench_ring_vs_etcd.py [--seconds N] [--repeats N] [--quick]
[--json FILE]
"""

import argparse
import json
import math
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/python"))

from simfabric_testing import (  # noqa: E402
    ApiClient,
    ApiError,
    call_any,
    make_ring,
    wait_leader,
)
from simfabric_testing.daemon import free_port  # noqa: E402

ETCD = "/usr/bin/etcd"
VALUE = "v" * 100                        # the ~100-byte record
REQUEST_TIMEOUT = 5.0                    # per request, both systems
ETCD_FAILOVER_ATTEMPT = 0.2              # per put while etcd fails over
CASES = [("write", 1), ("write", 16), ("write", 64), ("read", 16), ("read", 64)]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(text):
    print(text, file=sys.stderr, flush=True)


def proc_cpu(pid) -> float:
    """User + system CPU seconds of process PID (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy() -> float:
    """CPU seconds every core of the machine spent busy since boot."""
    with open("/proc/stat") as handle:
        ticks = [int(x) for x in handle.readline().split()[1:]]
    idle = ticks[3] + ticks[4]                  # idle + iowait
    return (sum(ticks[:8]) - idle) / CLK_TCK


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


class LeaderWatch:
    """During a failover, a thread of its own asks every survivor which
    leader it knows (on its own connections, every 10 ms) and records when
    one first names a leader other than the victim."""

    def __init__(self, system, survivors, victim_name):
        self.system = system
        self.survivors = survivors
        self.victim = victim_name
        self.start_time = None
        self.found = None
        self.ready = threading.Event()
        self.started = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError(f"{system.name}: leader watch did not connect")

    def _run(self):
        probes = [self.system.probe_client(m) for m in self.survivors]
        try:
            for probe in probes:
                self.system.probe_leader(probe)   # connected before the kill
            self.ready.set()
            self.started.wait(10)
            while not self.stop.is_set() and time.monotonic() < self.start_time + 30:
                for probe in probes:
                    try:
                        leader = self.system.probe_leader(probe)
                    except Exception:  # noqa: BLE001 - no answer in time
                        continue
                    if leader and leader != self.victim:
                        self.found = ((time.monotonic() - self.start_time) * 1000, leader)
                        return
                time.sleep(0.01)
        finally:
            for probe in probes:
                probe.close()

    def begin(self, start_time):
        self.start_time = start_time
        self.started.set()

    def result(self):
        self.thread.join(35)
        self.stop.set()
        return self.found


# ---------------------------------------------------------------- systems

class Simfabric:
    """A 3-member homeserver ring; clients talk to the leader."""

    name = "simfabric"

    def __init__(self, folder: Path):
        self.folder = folder
        self.ring = []
        self.leader = None

    def start(self):
        self.ring = make_ring(self.folder, 3)
        for member in self.ring:
            member.start()
        leader_name, _ = wait_leader(self.ring)
        self.leader = next(m for m in self.ring if m.name == leader_name)
        say(f"simfabric: ring up, leader {leader_name} at {self.leader.endpoint}")

    def server_pids(self):
        return [m.process.pid for m in self.ring if m.process is not None]

    def client(self):
        return ApiClient(self.leader.endpoint, self.leader.keys.public, timeout=REQUEST_TIMEOUT)

    @staticmethod
    def close(client):
        client.close()

    @staticmethod
    def warm(client):
        client.call("status")             # CURVE handshake outside the timing

    @staticmethod
    def write(client, key):
        reply = client.request("entity.create", path=key, checkpoint=VALUE)
        if not reply.get("ok"):
            raise ApiError(reply)

    @staticmethod
    def read(client, key):
        reply = client.request("entity.get", path=key)
        if not reply.get("ok"):
            raise ApiError(reply)

    @staticmethod
    def probe_client(member):
        return member.client(timeout=0.2)

    @staticmethod
    def probe_leader(client):
        return client.call("status")["leader"]

    def failover(self) -> dict:
        victim = self.leader
        survivors = [m for m in self.ring if m is not victim]
        watch = LeaderWatch(self, survivors, victim.name)
        pid = victim.process.pid
        start = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        watch.begin(start)
        victim.process.wait(10)
        try:
            reply = call_any(survivors, "entity.create", deadline=start + 30,
                             path="/bench/failover/1", checkpoint=VALUE)
            by = reply.get("node")
        except ApiError as error:
            # An attempt that timed out may have been applied after all.
            if error.code != "already_exists":
                raise
            by = error.reply.get("node")
        elapsed = (time.monotonic() - start) * 1000
        seen = watch.result()
        new_leader, _ = wait_leader(survivors, timeout=15)
        return {"ms": elapsed, "killed": victim.name, "answered_by": by,
                "new_leader": new_leader, "leader_seen_ms": seen[0] if seen else None,
                "method": "call_any over the survivors (1 s per attempt)"}

    def stop(self):
        for member in self.ring:
            try:
                member.stop(timeout=10)
            except Exception as error:  # noqa: BLE001 - keep cleaning up
                say(f"simfabric: stopping {member.name}: {error}")


class EtcdMember:
    def __init__(self, name, folder: Path):
        self.name = name
        self.data = folder / name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.client_url = f"http://127.0.0.1:{self.client_port}"
        self.peer_url = f"http://127.0.0.1:{self.peer_port}"
        self.log_path = folder / f"{name}.log"
        self.process = None
        self._log = None

    def alive(self):
        return self.process is not None and self.process.poll() is None


class Etcd:
    """A 3-member etcd cluster on loopback; clients talk to the leader."""

    name = "etcd"

    def __init__(self, folder: Path):
        import etcd3  # noqa: F401 - fail early when the client is missing

        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.members = [EtcdMember(f"e{n}", folder) for n in (1, 2, 3)]
        self.leader = None

    def start(self):
        cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        token = f"bench-{os.getpid()}-{random.randrange(1 << 30)}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        for m in self.members:
            m._log = open(m.log_path, "ab")
            m.process = subprocess.Popen(
                [ETCD, "--name", m.name, "--data-dir", str(m.data),
                 "--listen-client-urls", m.client_url,
                 "--advertise-client-urls", m.client_url,
                 "--listen-peer-urls", m.peer_url,
                 "--initial-advertise-peer-urls", m.peer_url,
                 "--initial-cluster", cluster,
                 "--initial-cluster-state", "new",
                 "--initial-cluster-token", token,
                 "--logger", "zap", "--log-outputs", "stderr"],
                stdout=m._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        for m in self.members:
            with self._client(m, 1.0) as probe:
                while True:
                    if m.process.poll() is not None:
                        raise RuntimeError(f"etcd {m.name} exited with {m.process.returncode}: "
                                           f"{m.log_path.read_text(errors='replace')[-2000:]}")
                    try:
                        probe.put("/bench/health", "ok")
                        break
                    except Exception:  # noqa: BLE001 - not ready yet
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"etcd {m.name} not healthy in 30 s")
                        time.sleep(0.1)
        with self._client(self.members[0], 2.0) as probe:
            leader = probe.status().leader
        self.leader = next(m for m in self.members if m.name == leader.name)
        say(f"etcd: cluster up, leader {self.leader.name} at {self.leader.client_url}")

    @staticmethod
    def _client(member, timeout):
        import etcd3

        # A private subchannel pool: each client its own TCP connection
        # (gRPC otherwise shares one between channels to the same target).
        return etcd3.client("127.0.0.1", member.client_port, timeout=timeout,
                            grpc_options=[("grpc.use_local_subchannel_pool", 1)])

    def server_pids(self):
        return [m.process.pid for m in self.members if m.process is not None]

    def client(self):
        return self._client(self.leader, REQUEST_TIMEOUT)

    @staticmethod
    def close(client):
        client.close()

    @staticmethod
    def warm(client):
        client.get("/bench/health")        # connect outside the timing

    @staticmethod
    def write(client, key):
        client.put(key, VALUE)

    @staticmethod
    def read(client, key):
        value, _ = client.get(key)
        if value is None:
            raise KeyError(key)

    def probe_client(self, member):
        return self._client(member, 0.2)

    @staticmethod
    def probe_leader(client):
        leader = client.status().leader
        return leader.name if leader is not None else None

    def failover(self) -> dict:
        victim = self.leader
        survivors = [m for m in self.members if m is not victim]
        clients = [(m, self._client(m, ETCD_FAILOVER_ATTEMPT)) for m in survivors]
        try:
            for _, c in clients:
                c.get("/bench/health")      # connected before the kill
            watch = LeaderWatch(self, survivors, victim.name)
            start = time.monotonic()
            os.kill(victim.process.pid, signal.SIGKILL)
            watch.begin(start)
            victim.process.wait(10)
            by = None
            while by is None and time.monotonic() < start + 30:
                for m, c in clients:
                    try:
                        c.put("/bench/failover/1", VALUE)
                        by = m.name
                        break
                    except Exception:  # noqa: BLE001 - no leader yet
                        pass
                else:
                    time.sleep(0.02)
            elapsed = (time.monotonic() - start) * 1000
            if by is None:
                raise RuntimeError("etcd: no write succeeded within 30 s of the leader's death")
            seen = watch.result()
            leader = clients[0][1].status().leader
        finally:
            for _, c in clients:
                c.close()
        return {"ms": elapsed, "killed": victim.name, "answered_by": by,
                "new_leader": leader.name if leader else None,
                "leader_seen_ms": seen[0] if seen else None,
                "method": f"put retried over the survivors ({ETCD_FAILOVER_ATTEMPT:g} s per attempt)"}

    def stop(self):
        for m in self.members:
            if m.process is not None and m.process.poll() is None:
                m.process.terminate()
        for m in self.members:
            if m.process is not None:
                try:
                    m.process.wait(10)
                except subprocess.TimeoutExpired:
                    m.process.kill()
                    m.process.wait(10)
            if m._log is not None:
                m._log.close()
                m._log = None


# ----------------------------------------------------------- load generator

def run_case(system, kind, clients, seconds, read_keys):
    """CLIENTS threads, each with its own connection, doing one KIND
    request at a time for SECONDS. Returns the case's figures and, for
    writes, the keys written."""
    tag = f"{kind[0]}{clients}"
    state = {}
    results = [None] * clients

    def begin():
        # Runs once, when every client is connected and warm.
        state["cpu_servers"] = {pid: proc_cpu(pid) for pid in system.server_pids()}
        state["cpu_self"] = self_cpu()
        state["cpu_machine"] = machine_busy()
        state["t0"] = time.perf_counter()
        state["deadline"] = state["t0"] + seconds

    barrier = threading.Barrier(clients, action=begin)

    def worker(index):
        latencies, written, errors, first_error = [], [], 0, None
        client = None
        try:
            client = system.client()
            system.warm(client)
            barrier.wait(timeout=60)
            deadline = state["deadline"]
            rng = random.Random(index)
            n = 0
            while True:
                now = time.perf_counter()
                if now >= deadline:
                    break
                if kind == "write":
                    key = f"/bench/{tag}/c{index}/{n}"
                else:
                    key = read_keys[rng.randrange(len(read_keys))]
                n += 1
                try:
                    if kind == "write":
                        system.write(client, key)
                    else:
                        system.read(client, key)
                except Exception as error:  # noqa: BLE001 - count, go on
                    errors += 1
                    first_error = first_error or f"{type(error).__name__}: {error}"
                    continue
                latencies.append(time.perf_counter() - now)
                if kind == "write":
                    written.append(key)
        except threading.BrokenBarrierError:
            first_error = first_error or "barrier broken (a client failed to connect)"
        except Exception as error:  # noqa: BLE001
            first_error = first_error or f"{type(error).__name__}: {error}"
            barrier.abort()
        finally:
            if client is not None:
                system.close(client)
            results[index] = (latencies, written, errors, first_error)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60 + 2 * REQUEST_TIMEOUT)
    t1 = time.perf_counter()
    if any(t.is_alive() for t in threads) or "t0" not in state:
        problems = {r[3] for r in results if r and r[3]}
        raise RuntimeError(f"{system.name} {tag}: clients did not run or finish: {problems}")
    cpu_servers = sum(proc_cpu(pid) - before for pid, before in state["cpu_servers"].items())
    cpu_self = self_cpu() - state["cpu_self"]
    #  Whatever else ran on the machine meanwhile (other jobs disturb the run).
    cpu_other = machine_busy() - state["cpu_machine"] - cpu_servers - cpu_self
    latencies = sorted(x for r in results for x in r[0])
    written = [k for r in results for k in r[1]]
    errors = sum(r[2] for r in results)
    first_errors = sorted({r[3] for r in results if r[3]})
    elapsed = t1 - state["t0"]
    ops = len(latencies)
    case = {
        "kind": kind,
        "clients": clients,
        "seconds": round(elapsed, 3),
        "ops": ops,
        "errors": errors,
        "ops_per_s": ops / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "server_cpu_s": round(cpu_servers, 3),
        "loadgen_cpu_s": round(cpu_self, 3),
        "other_cpu_s": round(max(0.0, cpu_other), 3),
    }
    if first_errors:
        case["error_samples"] = first_errors[:3]
    return case, written


def bench_system(system, seconds):
    """Start SYSTEM, run every case, then the failover; always stop it."""
    result = {"cases": [], "failover": None}
    try:
        system.start()
        keys = []
        for kind, clients in CASES:
            case, written = run_case(system, kind, clients, seconds, keys)
            keys.extend(written)
            result["cases"].append(case)
            say(f"{system.name:9} {kind:5} {clients:3} clients: {case['ops']:7} ops "
                f"{case['ops_per_s']:9.1f}/s  p50 {case['p50_ms']:7.2f} ms  "
                f"p99 {case['p99_ms']:7.2f} ms  errors {case['errors']}"
                + (f"  ({case['error_samples'][0]})" if case.get("error_samples") else ""))
            if kind == "write" and not keys:
                raise RuntimeError(f"{system.name}: no write succeeded")
        time.sleep(1.0)                     # no load before the failover
        result["failover"] = system.failover()
        say(f"{system.name:9} failover: {result['failover']}")
    finally:
        system.stop()
    return result


# ------------------------------------------------------------------ report

def ratio(a, b):
    return a / b if b and not math.isnan(a) and not math.isnan(b) else float("nan")


MEDIAN_FIELDS = ("ops", "ops_per_s", "p50_ms", "p99_ms", "server_cpu_s",
                 "loadgen_cpu_s", "other_cpu_s")


def median_of_rounds(rounds):
    """One system's ROUNDS as one result: each case's figures are the
    medians of its rounds (errors are summed), and the failover is the
    round whose time to the first write is the median (low median for an
    even count), kept whole so its other fields stay consistent."""
    cases = []
    for at, first in enumerate(rounds[0]["cases"]):
        runs = [r["cases"][at] for r in rounds]
        case = {"kind": first["kind"], "clients": first["clients"],
                "rounds": len(runs), "errors": sum(r["errors"] for r in runs)}
        for field in MEDIAN_FIELDS:
            values = [r[field] for r in runs if not math.isnan(r[field])]
            case[field] = statistics.median(values) if values else float("nan")
        samples = [e for r in runs for e in r.get("error_samples", [])]
        if samples:
            case["error_samples"] = sorted(set(samples))[:3]
        cases.append(case)
    times = [r["failover"]["ms"] for r in rounds]
    chosen = times.index(statistics.median_low(times))
    return {"cases": cases, "failover": rounds[chosen]["failover"]}


def round_ratios(sf_rounds, etcd_rounds):
    """Per case, the ratios simfabric / etcd of each round."""
    table = []
    for at, first in enumerate(sf_rounds[0]["cases"]):
        pairs = [(a["cases"][at], b["cases"][at]) for a, b in zip(sf_rounds, etcd_rounds)]
        table.append({
            "case": f"{first['kind']} {first['clients']}",
            "throughput": [ratio(a["ops_per_s"], b["ops_per_s"]) for a, b in pairs],
            "p50": [ratio(a["p50_ms"], b["p50_ms"]) for a, b in pairs],
            "p99": [ratio(a["p99_ms"], b["p99_ms"]) for a, b in pairs],
        })
    table.append({
        "case": "failover",
        "first_write": [ratio(a["failover"]["ms"], b["failover"]["ms"])
                        for a, b in zip(sf_rounds, etcd_rounds)],
    })
    return table


def report(results, seconds, per_round=None):
    """Print the table of RESULTS (one result per system, medians when
    there were several rounds) and, given PER_ROUND (round_ratios), each
    round's ratios."""
    sf, et = results["simfabric"], results["etcd"]
    rounds = sf["cases"][0].get("rounds", 1)
    lines = []
    head = (f"{'case':12} | {'ops/s sf':>9} {'etcd':>9} {'sf/etcd':>7} | "
            f"{'p50 ms sf':>9} {'etcd':>7} {'sf/etcd':>7} | "
            f"{'p99 ms sf':>9} {'etcd':>7} {'sf/etcd':>7}")
    lines.append(f"simfabric ring vs etcd 3.4, 3 members each on 127.0.0.1, {seconds:g} s per case, "
                 f"{os.cpu_count()} cores, {len(VALUE)}-byte records"
                 + (f", medians of {rounds} rounds" if rounds > 1 else ""))
    lines.append(head)
    lines.append("-" * len(head))
    ratios = []
    for a, b in zip(sf["cases"], et["cases"]):
        r = {"case": f"{a['kind']} {a['clients']}",
             "throughput": ratio(a["ops_per_s"], b["ops_per_s"]),
             "p50": ratio(a["p50_ms"], b["p50_ms"]),
             "p99": ratio(a["p99_ms"], b["p99_ms"])}
        ratios.append(r)
        lines.append(f"{r['case']:12} | {a['ops_per_s']:9.1f} {b['ops_per_s']:9.1f} "
                     f"{r['throughput']:7.2f} | {a['p50_ms']:9.2f} {b['p50_ms']:7.2f} "
                     f"{r['p50']:7.2f} | {a['p99_ms']:9.2f} {b['p99_ms']:7.2f} {r['p99']:7.2f}")
    lines.append("")
    head2 = (f"{'case':12} | {'ops sf':>7} {'etcd':>7} | {'errors sf':>9} {'etcd':>5} | "
             f"{'server CPU s sf':>15} {'etcd':>6} | {'loadgen CPU s sf':>16} {'etcd':>6} | "
             f"{'other CPU s sf':>14} {'etcd':>6}")
    lines.append(head2)
    lines.append("-" * len(head2))
    for a, b in zip(sf["cases"], et["cases"]):
        lines.append(f"{a['kind'] + ' ' + str(a['clients']):12} | {a['ops']:7} {b['ops']:7} | "
                     f"{a['errors']:9} {b['errors']:5} | {a['server_cpu_s']:15.2f} "
                     f"{b['server_cpu_s']:6.2f} | {a['loadgen_cpu_s']:16.2f} "
                     f"{b['loadgen_cpu_s']:6.2f} | {a['other_cpu_s']:14.2f} "
                     f"{b['other_cpu_s']:6.2f}")
    lines.append("")
    fs, fe = sf["failover"], et["failover"]

    def seen(f):
        return f"{f['leader_seen_ms']:.0f}" if f["leader_seen_ms"] is not None else "-"

    lines.append("failover: SIGKILL the leader under no load")
    lines.append(f"{'':10} | {'first write ms':>14} | {'new leader seen ms':>18} | killed -> new | how")
    for name, f in (("simfabric", fs), ("etcd", fe)):
        lines.append(f"{name:10} | {f['ms']:14.0f} | {seen(f):>18} | {f['killed']} -> "
                     f"{f['new_leader']:3} | {f['method']}")
    seen_ratio = (ratio(fs["leader_seen_ms"], fe["leader_seen_ms"])
                  if fs["leader_seen_ms"] and fe["leader_seen_ms"] else float("nan"))
    lines.append(f"{'sf/etcd':10} | {ratio(fs['ms'], fe['ms']):14.2f} | {seen_ratio:18.2f} |")
    if per_round and rounds > 1:
        lines.append("")
        lines.append("ratios sf/etcd of each round (the two systems' runs of one round "
                     "sat next to each other in time)")

        def spread(values):
            return " ".join(f"{v:5.2f}" for v in values) if values else "-"

        lines.append(f"{'case':12} | {'throughput':>{6 * rounds}} | {'p50':>{6 * rounds}} | "
                     f"{'p99':>{6 * rounds}}")
        for r in per_round:
            if r["case"] == "failover":
                lines.append(f"{'failover':12} | {'':>{6 * rounds}} | "
                             f"{spread(r['first_write']):>{6 * rounds}} | (first write after SIGKILL)")
            else:
                lines.append(f"{r['case']:12} | {spread(r['throughput']):>{6 * rounds}} | "
                             f"{spread(r['p50']):>{6 * rounds}} | {spread(r['p99']):>{6 * rounds}}")
    print("\n".join(lines), flush=True)
    return ratios


# -------------------------------------------------------------------- main

def _no_nan(value):
    """VALUE with NaN (a case without a single success) as null, for JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each case")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds per system, alternating which goes first; medians are reported")
    parser.add_argument("--quick", action="store_true", help="1 s per case (smoke run)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    options = parser.parse_args()
    seconds = 1.0 if options.quick else options.seconds
    if options.repeats < 1:
        parser.error("--repeats must be at least 1")
    if not os.access(ETCD, os.X_OK):
        parser.error(f"{ETCD} missing: install etcd-server (bench_ring_vs_etcd.sh does)")
    signal.signal(signal.SIGTERM, _terminate)

    build = ROOT / "build"
    build.mkdir(exist_ok=True)
    # The data of both systems on the same disk, the project's build folder.
    folder = Path(tempfile.mkdtemp(prefix="bench-ring-vs-etcd-", dir=build))
    rounds = {"simfabric": [], "etcd": []}
    makers = {"simfabric": Simfabric, "etcd": Etcd}
    try:
        for number in range(options.repeats):
            #  Alternate which system goes first, so a drift of the machine
            #  over the run falls on both alike.
            order = ("simfabric", "etcd") if number % 2 == 0 else ("etcd", "simfabric")
            if options.repeats > 1:
                say(f"round {number + 1} of {options.repeats}: {order[0]} first")
            for name in order:
                data = folder / f"{name}-{number}"
                rounds[name].append(bench_system(makers[name](data), seconds))
                shutil.rmtree(data, ignore_errors=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    results = {name: median_of_rounds(runs) for name, runs in rounds.items()}
    per_round = round_ratios(rounds["simfabric"], rounds["etcd"])
    ratios = report(results, seconds, per_round)
    if options.json:
        document = {
            "seconds_per_case": seconds,
            "rounds": options.repeats,
            "cores": os.cpu_count(),
            "record_bytes": len(VALUE),
            "simfabric": results["simfabric"],
            "etcd": results["etcd"],
            "ratios_simfabric_over_etcd": ratios,
            "ratios_of_each_round": per_round,
            "every_round": rounds,
        }
        Path(options.json).write_text(json.dumps(_no_nan(document), indent=2) + "\n")
        say(f"results written to {options.json}")


if __name__ == "__main__":
    main()

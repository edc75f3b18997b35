"""HTTP on both daemons (protocol/http.md), with real rings and sims:
/metrics parses as Prometheus text and moves with traffic; /health and
/ready turn 503 when quorum is lost and back; every REST route is the
ZeroMQ operation it names, behind a bearer token that is refused when
missing, wrong, expired or revoked, with nothing changed; TLS when a
certificate is configured; bad requests answered and the daemon serving.
"""

import datetime
import http.client
import json
import os
import ssl
import time
import urllib.parse

import pytest
from prometheus_client.parser import text_string_to_metric_families

from simfabric_testing import (ApiError, Daemon, leader_client, make_ring, make_sims, running,
                               wait_for, wait_leader, wait_registered)
from simfabric_testing.client import RETRYABLE
from simfabric_testing.daemon import free_port
from simfabric_testing.keys import read_key_pair


def _http_extra():
    return {"http": f"tcp://127.0.0.1:{free_port()}"}


def _port(daemon):
    return int(daemon.section["http"].rsplit(":", 1)[1])


def _request(daemon, method, path, body=None, token=None, headers=None, tls=None,
             timeout=10):
    """(status, headers, body as JSON or text) of one request to DAEMON."""
    if tls:
        connection = http.client.HTTPSConnection("127.0.0.1", _port(daemon), context=tls,
                                                 timeout=timeout)
    else:
        connection = http.client.HTTPConnection("127.0.0.1", _port(daemon), timeout=timeout)
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        sent["Content-Type"] = "application/json"
    try:
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        text = response.read().decode()
        got = dict(response.getheaders())
    finally:
        connection.close()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = text
    return response.status, got, parsed


def _token(ring, principal, ttl_ms=600_000):
    """A bearer token for PRINCIPAL (a Z85 key) from the ring's
    administrator, through elections."""
    admin = read_key_pair(ring[0].admin.secret_path)
    for _ in range(50):
        with leader_client(ring, keys=admin) as client:
            reply = client.request("access.create", principal=principal, ttl_ms=ttl_ms,
                                   note="test")
        if reply["ok"]:
            # Each member accepts it once it has applied it.
            for member in ring:
                if member.alive() and "http" in member.section:
                    wait_for(lambda: _request(member, "GET", "/v1/status",
                                              token=reply["token"])[0] == 200,
                             timeout=10, what=f"{member.name} accepting the new token")
            return reply
        if reply["error"]["code"] not in RETRYABLE:
            raise ApiError(reply)
        time.sleep(0.1)
    raise AssertionError(f"no token: {reply}")


def _metrics(daemon):
    status, headers, text = _request(daemon, "GET", "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {family.name: family for family in text_string_to_metric_families(text)}


def _sample(families, family, suffix="", **labels):
    for sample in families[family].samples:
        if sample.name == family + suffix and all(sample.labels.get(k) == v
                                                  for k, v in labels.items()):
            return sample.value
    raise KeyError(f"{family}{suffix} {labels}")


@pytest.fixture
def fabric(tmp_path):
    ring = make_ring(tmp_path, 3, extra=None)
    for member in ring:
        member.section.update(_http_extra())
        member.write_config()
    sims = make_sims(tmp_path, ring, 1, extra=_http_extra())
    with running(ring, sims):
        wait_leader(ring)
        wait_registered(sims, peers=False)
        yield ring, sims


def test_metrics_parse_and_move_with_traffic(fabric):
    ring, sims = fabric
    leader, _ = wait_leader(ring)
    member = next(m for m in ring if m.name == leader)
    before = _metrics(member)
    # prometheus_client names a counter family without its _total.
    assert before["simfabric_homeserver_api_requests"].type == "counter"
    assert before["simfabric_homeserver_commit_index"].type == "gauge"
    assert before["simfabric_homeserver_request_duration_seconds"].type == "histogram"
    assert before["simfabric_homeserver_commit_duration_seconds"].type == "histogram"
    assert before["simfabric_homeserver_apply_duration_seconds"].type == "histogram"
    assert _sample(before, "simfabric_homeserver_role", role="leader", node=leader) == 1
    requests = _sample(before, "simfabric_homeserver_api_requests", "_total")
    with member.client() as client:
        for number in range(20):
            client.call("entity.create", path=f"/m/{number}")
    after = _metrics(member)
    assert _sample(after, "simfabric_homeserver_api_requests", "_total") >= requests + 20
    assert _sample(after, "simfabric_homeserver_request_duration_seconds", "_count",
                   op="entity.create") >= 20
    assert _sample(after, "simfabric_homeserver_commit_duration_seconds", "_count") \
        >= _sample(before, "simfabric_homeserver_commit_duration_seconds", "_count") + 20
    assert _sample(after, "simfabric_homeserver_commit_index") \
        >= _sample(before, "simfabric_homeserver_commit_index") + 20
    # Buckets are cumulative and end at the count.
    buckets = [s for s in after["simfabric_homeserver_request_duration_seconds"].samples
               if s.name.endswith("_bucket") and s.labels["op"] == "entity.create"]
    assert [b.value for b in buckets] == sorted(b.value for b in buckets)
    assert buckets[-1].labels["le"] == "+Inf"
    assert buckets[-1].value == _sample(after, "simfabric_homeserver_request_duration_seconds",
                                        "_count", op="entity.create")

    sim = sims[0]
    families = _metrics(sim)
    assert _sample(families, "simfabric_simserver_registered") == 1
    assert families["simfabric_simserver_transfer_duration_seconds"].type == "histogram"
    with sim.client() as client:
        client.call("entity.claim", path="/m/0")
    families = _metrics(sim)
    assert _sample(families, "simfabric_simserver_transfer_duration_seconds", "_count") == 1
    assert _sample(families, "simfabric_simserver_authoritative") >= 1


def test_health_and_ready_turn_503_without_quorum_and_back(fabric):
    ring, sims = fabric
    for member in ring:
        status, _, body = _request(member, "GET", "/health")
        assert status == 200 and body["healthy"] is True, body
        status, _, body = _request(member, "GET", "/ready")
        assert status == 200 and body == {"ready": True}
    assert _request(sims[0], "GET", "/health")[0] == 200
    assert _request(sims[0], "GET", "/ready")[0] == 200
    survivor, *stopped = ring
    for member in stopped:
        member.stop()
    # A lone member knows no leader once the election timeout passes.
    wait_for(lambda: _request(survivor, "GET", "/health")[0] == 503, timeout=15,
             what="503 from the member left alone")
    status, headers, body = _request(survivor, "GET", "/health")
    assert body["healthy"] is False
    assert any("knows no leader" in line for line in body["problems"]), body
    status, _, body = _request(survivor, "GET", "/ready")
    assert status == 503 and body["reason"] == "no leader is known"
    # The sim's heartbeats go unanswered: three intervals (1 s each) on.
    wait_for(lambda: _request(sims[0], "GET", "/health")[0] == 503, timeout=15,
             what="503 from the sim whose ring lost quorum")
    for member in stopped:
        member.start()
    wait_for(lambda: all(_request(m, "GET", "/health")[0] == 200 for m in ring), timeout=20,
             what="every member healthy again")
    wait_for(lambda: _request(sims[0], "GET", "/health")[0] == 200, timeout=20,
             what="the sim healthy again")


def test_rest_serves_each_route_as_its_operation(fabric):
    ring, sims = fabric
    admin = read_key_pair(ring[0].admin.secret_path)
    created = _token(ring, admin.public.decode())
    assert created["token"].startswith("sf1." + created["token_id"] + ".")
    token = created["token"]
    follower = next(m for m in ring if m.name != wait_leader(ring)[0])
    # Writes and linearizable reads through a follower, as over ZeroMQ.
    status, _, body = _request(follower, "PUT", "/v1/entities/world/room1/cube",
                               {"checkpoint": "hello", "rule": "ask"}, token=token)
    assert status == 201, body
    assert body["path"] == "/world/room1/cube" and body["index"] > 0
    status, _, body = _request(follower, "GET", "/v1/entities/world/room1/cube", token=token)
    assert status == 200 and body["checkpoint"] == "hello", body
    assert body["rule"] == "ask"
    status, _, body = _request(follower, "PUT", "/v1/entities/world/room1/cube",
                               {"checkpoint": "again"}, token=token)
    assert status == 409 and body["error"]["code"] == "already_exists"
    status, _, body = _request(follower, "GET",
                               "/v1/entities?prefix=/world/&limit=5", token=token)
    assert status == 200 and [e["path"] for e in body["entities"]] == ["/world/room1/cube"]
    status, _, body = _request(follower, "PUT", "/v1/rules/world/room1/cube", {"rule": "deny"},
                               token=token)
    assert status == 200, body
    status, _, body = _request(follower, "POST", "/v1/players",
                               {"player": "ada", "key": sims[0].keys.public.decode()},
                               token=token)
    assert status in (200, 201), body
    status, _, body = _request(follower, "GET", "/v1/players/ada", token=token)
    assert status == 200 and body["player"] == "ada", body
    for path, member in (("/v1/status", "node"), ("/v1/counters", "counters"),
                         ("/v1/sims", "sims"), ("/v1/load", "sims"),
                         ("/v1/balance/moves", "moves"), ("/v1/access", "tokens")):
        status, _, body = _request(follower, "GET", path, token=token)
        assert status == 200 and member in body, (path, body)
    assert any(t["token_id"] == created["token_id"] and t["revoked"] is False
               for t in body["tokens"])
    assert "hash" not in json.dumps(body) and created["token"] not in json.dumps(body)
    status, _, body = _request(follower, "DELETE", "/v1/entities/world/room1/cube", token=token)
    assert status == 200, body
    status, _, body = _request(follower, "GET", "/v1/entities/world/room1/cube", token=token)
    assert status == 404 and body["error"]["code"] == "not_found"
    # Stale reads are the query's choice.
    status, _, body = _request(follower, "GET", "/v1/sims?consistency=stale", token=token)
    assert status == 200
    # Every route of the table answers something other than "no route".
    for method, path in (("POST", "/v1/sims/sim1/drain"), ("GET", "/v1/trace/t1"),
                         ("GET", "/v1/grants/none"), ("POST", "/v1/authority/expire")):
        status, _, body = _request(follower, method, path, {} if method == "POST" else None,
                                   token=token)
        assert status < 400 or body["error"]["code"] != "unknown_op", (path, body)


def test_bad_requests_are_answered_and_change_nothing(fabric):
    ring, _ = fabric
    admin = read_key_pair(ring[0].admin.secret_path)
    token = _token(ring, admin.public.decode())["token"]
    member = ring[0]

    def nothing_made():
        with member.client(keys=admin) as client:
            return client.call("entity.list", prefix="/bad/")["entities"] == []

    cases = [
        ("PUT", "/v1/entities/bad/a", "{not json", 400, "malformed_json"),
        ("PUT", "/v1/entities/bad/a", "[1, 2]", 400, "malformed_json"),
        ("PUT", "/v1/entities/bad/a", {"path": "/bad/b"}, 400, "invalid_argument"),
        ("PUT", "/v1/entities/bad/a", {"op": "entity.delete"}, 400, "invalid_argument"),
        ("PUT", "/v1/entities/bad/a", {"nonsense": 1}, 400, "invalid_argument"),
        ("PUT", "/v1/entities/bad/a?rule=maybe", None, 400, "invalid_argument"),
        ("GET", "/v1/nothing/here", None, 404, "unknown_op"),
        ("GET", "/nothing", None, 404, "unknown_op"),
    ]
    for method, path, body, status, code in cases:
        got, _, answer = _request(member, method, path, body, token=token)
        assert (got, answer["error"]["code"]) == (status, code), (method, path, answer)
    got, headers, answer = _request(member, "POST", "/v1/entities/bad/a", {}, token=token)
    assert got == 405 and set(headers["Allow"].split(", ")) == {"GET", "PUT", "DELETE"}
    got, _, answer = _request(member, "PUT", "/v1/entities/bad/a", "x" * 70_000, token=token)
    assert got == 413 and answer["error"]["code"] == "too_large"
    got, _, _ = _request(member, "GET", "/v1/status", token=token,
                         headers={"X-Padding": "x" * 40_000})
    assert got in (413, 431)
    assert nothing_made()
    # Still serving.
    assert _request(member, "GET", "/v1/status", token=token)[0] == 200


def test_a_token_missing_wrong_expired_or_revoked_is_refused(fabric):
    ring, sims = fabric
    admin = read_key_pair(ring[0].admin.secret_path)
    member = ring[1]
    good = _token(ring, admin.public.decode())
    short = _token(ring, admin.public.decode(), ttl_ms=1000)
    # A token stands for its principal and no more: a sim's key is no
    # administrator.
    sim_token = _token(ring, sims[0].keys.public.decode())["token"]

    def refused(token, expect_status, words):
        status, headers, body = _request(member, "PUT", "/v1/entities/tok/x", {}, token=token)
        assert status == expect_status, body
        assert words in body["error"]["message"], body
        if status == 401:
            assert headers["WWW-Authenticate"].startswith("Bearer")

    refused(None, 401, "no token")
    refused("not-a-token", 401, "not Bearer sf1.ID.SECRET")
    token_id, secret = good["token_id"], good["token"].rsplit(".", 1)[1]
    wrong = f"sf1.{token_id}.{'A' * len(secret)}"
    refused(wrong, 401, "unknown token")
    refused(f"sf1.{'0' * 16}.{secret}", 401, "unknown token")
    time.sleep(1.2)
    refused(short["token"], 401, "the token expired")
    status, _, body = _request(member, "POST", "/v1/sims/sim1/drain", {"drain": False},
                               token=sim_token)
    assert status == 403 and body["error"]["code"] == "unauthorized", body
    # Revoked: refused on every member once applied.
    status, _, body = _request(member, "DELETE", f"/v1/access/{token_id}", token=good["token"])
    assert status == 200 and body["changed"] is True, body
    for other in ring:
        wait_for(lambda: _request(other, "GET", "/v1/status", token=good["token"])[0] == 401,
                 timeout=5, what=f"{other.name} refusing the revoked token")
    refused(good["token"], 401, "the token was revoked")
    with ring[0].client(keys=admin) as client:
        assert client.call("entity.list", prefix="/tok/")["entities"] == []
        again = client.call("access.revoke", token_id=token_id)
        assert again["changed"] is False
        with pytest.raises(ApiError) as unknown:
            client.call("access.revoke", token_id="0" * 16)
        assert unknown.value.code == "not_found"
        # Only an administrator issues tokens.
    with ring[0].client() as stranger:
        with pytest.raises(ApiError) as refused_create:
            stranger.call("access.create", principal=admin.public.decode(), ttl_ms=60_000)
        assert refused_create.value.code == "unauthorized"


def _self_signed(folder):
    """A certificate for 127.0.0.1 and its key (0600), PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    import ipaddress
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path = folder / "http.pem"
    key_path = folder / "http.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return cert_path, key_path


def test_https_when_a_certificate_is_configured(tmp_path):
    cert, key = _self_signed(tmp_path)
    member = Daemon("homeserver", "hs1", tmp_path / "hs1",
                    extra=dict(_http_extra(), http_cert=str(cert), http_key=str(key)))
    member.ring = [member]
    member.write_config()
    with running([member]):
        wait_leader([member])
        tls = ssl.create_default_context(cafile=str(cert))
        status, _, body = _request(member, "GET", "/health", tls=tls)
        assert status == 200 and body["healthy"] is True
        admin = read_key_pair(member.admin.secret_path)
        with member.client(keys=admin) as client:
            token = client.call("access.create", principal=admin.public.decode(),
                                ttl_ms=60_000)["token"]
        status, _, body = _request(member, "PUT", "/v1/entities/tls/a", {}, token=token, tls=tls)
        assert status == 201, body
        # No plain HTTP on a TLS port.
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
            _request(member, "GET", "/health", timeout=3)
        # A client that does not trust the certificate gets no answer.
        with pytest.raises(ssl.SSLError):
            _request(member, "GET", "/health", tls=ssl.create_default_context(), timeout=3)


@pytest.mark.parametrize("extra, words", [
    ({"http_cert": "CERT"}, "http_cert and http_key go together"),
    ({"http_cert": "CERT", "http_key": "OPENKEY"}, "readable by others"),
    ({"http_cert": "KEY", "http_key": "KEY"}, "cannot serve HTTPS"),
    ({"http": "tcp://127.0.0.1:notaport"}, "http"),
])
def test_a_bad_http_configuration_fails_the_start_and_says_why(tmp_path, extra, words):
    cert, key = _self_signed(tmp_path)
    open_key = tmp_path / "open.key"
    open_key.write_bytes(key.read_bytes())
    open_key.chmod(0o644)
    names = {"CERT": str(cert), "KEY": str(key), "OPENKEY": str(open_key)}
    extra = {k: names.get(v, v) for k, v in extra.items()}
    member = Daemon("homeserver", "hs1", tmp_path / "hs1", extra=dict(_http_extra(), **extra))
    member.ring = [member]
    member.write_config()
    with pytest.raises(Exception) as failed:
        member.start(timeout=5)
    member.stop()
    assert words in member.log(), member.log()


class Feed:
    """A client of GET /v1/events: reads server-sent events as they come."""

    def __init__(self, daemon, token, query=""):
        self.connection = http.client.HTTPConnection("127.0.0.1", _port(daemon), timeout=10)
        self.connection.request("GET", f"/v1/events{query}",
                                headers={"Authorization": f"Bearer {token}"})
        self.response = self.connection.getresponse()

    def next(self, timeout=10):
        """The next event as (name, data); comments are skipped."""
        self.connection.sock.settimeout(timeout)
        fields = {}
        while True:
            line = self.response.fp.readline().decode()
            if line == "":
                raise EOFError("the stream ended")
            line = line.rstrip("\n")
            if not line:
                if "data" in fields:
                    return fields.get("event", "message"), json.loads(fields["data"])
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value

    def close(self):
        self.connection.close()


def _create(ring, paths):
    with leader_client(ring, keys=read_key_pair(ring[0].admin.secret_path)) as client:
        return [client.call("entity.create", path=path)["index"] for path in paths]


def test_the_change_feed_resumes_from_an_index_after_a_restart(fabric):
    ring, _ = fabric
    admin = read_key_pair(ring[0].admin.secret_path)
    token = _token(ring, admin.public.decode())["token"]
    member = ring[1]
    status, _, body = _request(member, "GET", "/v1/events", token=None)
    assert status == 401
    live = Feed(member, token, "?prefix=entity:/feed/")
    assert live.response.status == 200
    assert live.response.getheader("Content-Type") == "text/event-stream"
    indexes = _create(ring, [f"/feed/e{n}" for n in range(10)])
    seen = [live.next() for _ in range(10)]
    live.close()
    assert [event for event, _ in seen] == ["entity.create"] * 10
    assert [data["index"] for _, data in seen] == indexes
    assert [data["topic"] for _, data in seen] == [f"entity:/feed/e{n}" for n in range(10)]
    # From an index: what came after it, in order.
    resumed = Feed(member, token, f"?from={indexes[4]}&prefix=entity:/feed/")
    assert [resumed.next()[1]["index"] for _ in range(5)] == indexes[5:]
    resumed.close()
    # The same after the member restarts: it rebuilds what it keeps.
    member.stop()
    member.start()
    wait_for(lambda: _request(member, "GET", "/ready")[0] == 200, timeout=20,
             what=f"{member.name} ready again")
    after = Feed(member, token, f"?prefix=entity:/feed/&from={indexes[4]}")
    got = [after.next() for _ in range(5)]
    assert [data["index"] for _, data in got] == indexes[5:], got
    more = _create(ring, ["/feed/later"])
    event, data = after.next()
    assert (event, data["index"], data["result"]["path"]) == ("entity.create", more[0],
                                                               "/feed/later")
    after.close()
    # Last-Event-ID wins over from, as browsers resume.
    connection = http.client.HTTPConnection("127.0.0.1", _port(member), timeout=10)
    connection.request("GET", "/v1/events?from=0&prefix=entity:/feed/",
                       headers={"Authorization": f"Bearer {token}",
                                "Last-Event-ID": str(indexes[8])})
    response = connection.getresponse()
    assert b"id: %d\n" % indexes[9] in response.fp.readline() + response.fp.readline()
    connection.close()


def test_the_change_feed_says_gap_when_it_kept_too_little(tmp_path):
    member = Daemon("homeserver", "hs1", tmp_path / "hs1",
                    extra=dict(_http_extra(), events_kept=5))
    member.ring = [member]
    member.write_config()
    with running([member]):
        wait_leader([member])
        admin = read_key_pair(member.admin.secret_path)
        token = _token([member], admin.public.decode())["token"]
        indexes = _create([member], [f"/gap/e{n}" for n in range(20)])
        feed = Feed(member, token, "?from=0")
        event, data = feed.next()
        assert event == "gap", (event, data)
        assert data["from"] == 0 and data["oldest"] > indexes[0]
        rest = [feed.next()[1]["index"] for _ in range(5)]
        assert rest == sorted(rest) and rest[-1] == indexes[-1]
        feed.close()
        # A bad from is refused, and the member serves on.
        status, _, body = _request(member, "GET", "/v1/events?from=-3", token=token)
        assert status == 400 and "from" in body["error"]["message"]
        assert _request(member, "GET", "/health")[0] == 200


def _routes():
    import re
    from pathlib import Path
    header = (Path(__file__).resolve().parents[2] / "broker" / "hs_fsm.h").read_text()
    return re.findall(r'X \(HS_OP_\w+,\s*"([a-z._]+)",\s*HS_OP_\w+,\s*HS_OP_\w+,\s*'
                      r'"([A-Z]+) ([^"]+)"\)', header.replace("\\\n", " "))


PARAMETERS = {"{path}": "rest/x", "{sim}": "sim1", "{player}": "ada", "{trace}": "t1",
              "{token_id}": "0" * 16, "{backup}": "0" * 16}


def test_every_route_refuses_a_request_without_a_token_and_changes_nothing(fabric):
    """Every operation's route, from the table the daemon serves: 401
    without a token, with nothing changed; with an administrator's token,
    the operation itself answers (never "no route", never 405)."""
    ring, _ = fabric
    admin = read_key_pair(ring[0].admin.secret_path)
    token = _token(ring, admin.public.decode())["token"]
    member = ring[1]
    routes = _routes()
    assert len(routes) > 35

    def last_change():
        with member.client() as client:
            return client.call("events.read", **{"from": 0, "limit": 1})["last"]

    before = last_change()
    for op, method, route in routes:
        path = route
        for name, value in PARAMETERS.items():
            path = path.replace(name, value)
        body = {} if method in ("POST", "PUT") else None
        status, headers, answer = _request(member, method, path, body)
        assert status == 401, (op, path, answer)
        assert answer["error"]["code"] == "unauthorized" and "no token" in \
            answer["error"]["message"], (op, answer)
        assert headers["WWW-Authenticate"].startswith("Bearer")
    assert last_change() == before
    for op, method, route in routes:
        path = route
        for name, value in PARAMETERS.items():
            path = path.replace(name, value)
        body = {} if method in ("POST", "PUT") else None
        status, _, answer = _request(member, method, path, body, token=token)
        assert status not in (401, 404, 405) or (
            status == 404 and answer["error"]["code"] == "not_found"), (op, path, answer)
        if status >= 400:
            assert answer["error"]["code"] != "unknown_op", (op, answer)

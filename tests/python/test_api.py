"""The JSON API envelope on a real daemon: good requests, bad input,
authentication. Bad input gets a stable error code and the daemon keeps
serving."""

import json
import subprocess

import pytest
import zmq

from simfabric_testing import (ApiClient, ApiError, NoReply, admit, binary, wait_leader,
                               write_key_pair)


@pytest.fixture(params=["homeserver", "simserver"])
def daemon(request):
    return request.getfixturevalue(request.param)


def test_status_names_the_node(daemon):
    with daemon.client() as client:
        reply = client.call("status")
    assert reply["node"] == daemon.name
    assert reply["version"]
    assert reply["uptime_ms"] >= 0
    assert reply["id"] >= 1


def raw(client, payload: bytes):
    client.send_raw(payload)
    return json.loads(client.recv_raw()[-1])


@pytest.mark.parametrize("payload, code, message", [
    (b'{"op": "status", "id": ', "malformed_json", "malformed JSON at line 1"),
    (b'[1, 2]', "malformed_json", "request must be a JSON object"),
    (b'', "malformed_json", "empty request"),
    (b'\xff\xfe{}', "malformed_json", "malformed JSON"),
    (b'{"op": "status"}', "invalid_request", "missing field 'id'"),
    (b'{"op": "status", "id": 1.5}', "invalid_request", "field 'id' must be a string or an integer"),
])
def test_bad_envelope_without_id(daemon, payload, code, message):
    with daemon.client() as client:
        reply = raw(client, payload)
        assert reply["ok"] is False
        assert reply["id"] is None
        assert reply["error"]["code"] == code
        assert message in reply["error"]["message"]
        assert client.call("status")["ok"]


@pytest.mark.parametrize("body, code, message", [
    ({"id": "a"}, "invalid_request", "missing field 'op'"),
    ({"id": "a", "op": 7}, "invalid_request", "field 'op' must be a string"),
    ({"id": "a", "op": "Status!"}, "invalid_request", "not a valid operation name"),
    ({"id": "a", "op": "statsu"}, "unknown_op", "no such operation 'statsu'"),
    ({"id": "a", "op": "status", "verbose": True}, "invalid_argument", "unknown field 'verbose'"),
])
def test_bad_request_echoes_the_id(daemon, body, code, message):
    with daemon.client() as client:
        reply = raw(client, json.dumps(body).encode())
        assert reply == {"id": "a", "ok": False, "error": {"code": code, "message": reply["error"]["message"]}}
        assert message in reply["error"]["message"]
        assert client.call("status")["ok"]


def test_oversize_request_is_refused_unparsed(daemon):
    with daemon.client() as client:
        big = b'{"op": "status", "id": 1, "pad": "' + b"x" * 70000 + b'"}'
        reply = raw(client, big)
        assert reply["error"]["code"] == "too_large"
        assert "exceeds the limit of 65536" in reply["error"]["message"]
        assert client.call("status")["ok"]


def test_multi_frame_request_is_refused(daemon):
    with daemon.client() as client:
        client.send_raw(b'{"op":"status","id":1}', b"extra")
        reply = json.loads(client.recv_raw()[-1])
        assert reply["error"]["code"] == "invalid_request"
        assert client.call("status")["ok"]


def test_req_socket_framing_works(daemon):
    """A REQ client (empty delimiter added by libzmq) gets its reply."""
    context = zmq.Context.instance()
    public, secret = zmq.curve_keypair()
    socket = context.socket(zmq.REQ)
    socket.linger = 0
    socket.curve_serverkey = daemon.keys.public
    socket.curve_publickey, socket.curve_secretkey = public, secret
    socket.connect(daemon.endpoint)
    socket.send(b'{"op":"status","id":"req"}')
    assert socket.poll(5000)
    reply = json.loads(socket.recv())
    socket.close()
    assert reply["id"] == "req" and reply["ok"]


def test_pipelined_requests_all_answered(daemon):
    with daemon.client() as client:
        for index in range(50):
            client.send_raw(json.dumps({"op": "status", "id": index}).encode())
        ids = sorted(json.loads(client.recv_raw()[-1])["id"] for _ in range(50))
        assert ids == list(range(50))


def test_wrong_server_key_gets_no_session(daemon):
    """A client that pins another key never reaches the API."""
    impostor_key, _ = zmq.curve_keypair()
    with ApiClient(daemon.endpoint, impostor_key, timeout=0.5) as client:
        with pytest.raises(NoReply):
            client.request("status")
    with daemon.client() as client:
        assert client.call("status")["ok"]


def test_plain_client_gets_no_session(daemon):
    """A client without CURVE at all never reaches the API."""
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.linger = 0
    socket.connect(daemon.endpoint)
    socket.send(b'{"op":"status","id":1}')
    assert socket.poll(500) == 0
    socket.close()


def test_refusals_are_logged_one_line_each(homeserver):
    with homeserver.client() as client:
        raw(client, b"not json")
        client.call("status")
    lines = [line for line in homeserver.log().splitlines() if "refused request" in line]
    assert len(lines) == 1
    assert "malformed_json" in lines[0]


def test_a_player_registration_does_not_open_sim_names_to_anyone(homeserver):
    """A registered sim keeps its key whatever was registered before it:
    a player's registration once let any key re-key any sim (issue 21)."""
    with homeserver.client() as a, homeserver.client() as b, homeserver.client() as c:
        a.call("player.register", player="alice")
        b.call("sim.register", sim="sim1", token=admit(homeserver, "sim1"))
        reply = c.request("sim.register", sim="sim1")
        assert reply["ok"] is False
        assert reply["error"]["code"] == "unauthorized"
        assert "sim 'sim1' is registered to another key" in reply["error"]["message"]
        sims = c.call("sim.list")["sims"]
    assert [(sim["sim"], sim["key"]) for sim in sims] == [("sim1", b.public_key.decode())]


@pytest.fixture
def guarded(tmp_path):
    """A homeserver that admits only the keys in its clients folder: it,
    a friend's key (admitted) and a stranger's (not)."""
    from simfabric_testing import Daemon

    allowed = tmp_path / "clients"
    friend = write_key_pair(allowed, "friend")
    stranger = write_key_pair(tmp_path / "other", "stranger")
    daemon = Daemon("homeserver", "hs1", tmp_path / "hs1", extra={"clients": str(allowed)})
    daemon.start(keys=friend)
    yield daemon, friend, stranger
    assert daemon.stop() == 0


def test_clients_folder_restricts_who_connects(guarded):
    daemon, friend, stranger = guarded
    with daemon.client(keys=stranger, timeout=0.5) as client:
        with pytest.raises(NoReply):
            client.request("status")
    assert "sf_zap: refused" in daemon.log()
    with daemon.client(keys=friend) as client:
        assert client.call("status")["ok"]


def test_counters_count_requests_and_refusals(daemon):
    with daemon.client() as client:
        before = client.call("counters")["counters"]
        with pytest.raises(ApiError):
            client.call("statsu")
        after = client.call("counters")["counters"]
        with pytest.raises(ApiError) as refused:
            client.call("counters", extra=1)
    assert refused.value.code == "invalid_argument" and "extra" in refused.value.message
    # Between the two reads: the unknown op and the second read itself.
    assert after["api_requests"] - before["api_requests"] == 2
    assert after["api_refused"] - before["api_refused"] == 1
    assert after["zap_refused"] == 0


def test_a_redialling_stranger_is_logged_once_and_counted(guarded):
    daemon, friend, stranger = guarded
    for _ in range(4):
        with daemon.client(keys=stranger, timeout=0.3) as client:
            with pytest.raises(NoReply):
                client.request("status")
    with daemon.client(keys=friend) as client:
        counters = client.call("counters")["counters"]
    assert counters["zap_refused"] == 4
    lines = [line for line in daemon.log().splitlines()
             if "sf_zap: refused " + stranger.public.decode() in line]
    assert len(lines) == 1, lines

    result = subprocess.run([str(binary("fabricctl")), "counters", "--server", daemon.endpoint,
                             "--server-key", str(daemon.keys.public_path),
                             "--key", str(friend.secret_path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    printed = dict(line.split() for line in result.stdout.splitlines() if line.strip())
    assert printed["zap_refused"] == "4"
    assert "PEER" not in result.stdout


def test_fabricctl_status_and_request(homeserver):
    common = ["--server", homeserver.endpoint, "--server-key", str(homeserver.keys.public_path)]
    # status exits 1 while the member knows no leader (operations.md).
    wait_leader([homeserver])
    result = subprocess.run([str(binary("fabricctl")), "status", *common],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ID", "ROLE", "TERM", "COMMIT", "APPLIED",
                                "SNAPSHOT", "LEADER", "DIGEST", "DIVERGED", "API"]
    assert lines[1].split()[:3] == ["hs1", "1", "leader"]

    result = subprocess.run([str(binary("fabricctl")), "status", "--json", *common],
                            capture_output=True, text=True, timeout=30)
    assert json.loads(result.stdout)["node"] == "hs1"

    result = subprocess.run([str(binary("fabricctl")), "request", "statsu", *common],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"]["code"] == "unknown_op"
    assert "fabricctl: error: unknown_op: no such operation 'statsu'" in result.stderr


def test_fabricctl_malformed_json_argument(homeserver):
    """Malformed JSON given on the command line never leaves the tool."""
    result = subprocess.run([str(binary("fabricctl")), "request", "status", '{"a": ',
                             "--server", homeserver.endpoint,
                             "--server-key", str(homeserver.keys.public_path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith("fabricctl: error: request arguments: malformed JSON at line 1")
    assert "refused request" not in homeserver.log()


def test_fabricctl_raw_malformed_json_reaches_the_daemon(homeserver):
    result = subprocess.run([str(binary("fabricctl")), "raw", '{"op": "status", "id": ',
                             "--server", homeserver.endpoint,
                             "--server-key", str(homeserver.keys.public_path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    reply = json.loads(result.stdout)
    assert reply["id"] is None and reply["error"]["code"] == "malformed_json"


def test_sigterm_exits_zero_and_sigint_too(tmp_path):
    import signal
    from simfabric_testing import Daemon

    for sig in (signal.SIGTERM, signal.SIGINT):
        daemon = Daemon("homeserver", "hs1", tmp_path / sig.name).start()
        assert daemon.stop(sig) == 0
        assert "homeserver: stopping" in daemon.log()


def test_port_in_use_is_a_runtime_failure(homeserver, tmp_path):
    from simfabric_testing import Daemon

    second = Daemon("homeserver", "hs2", tmp_path / "hs2")
    result = subprocess.run([str(binary("homeserver")), "--config", str(second.config),
                             "--api", homeserver.endpoint],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert f"cannot bind api endpoint {homeserver.endpoint}: Address already in use" in result.stderr

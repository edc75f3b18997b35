"""The homeserver's operations are one table (HS_OP_MAP in
broker/hs_fsm.h): the spec's list is that table, and the daemon serves
from it."""

import re
from pathlib import Path

import pytest

from simfabric_testing import ApiError

ROOT = Path(__file__).resolve().parents[2]
KINDS = {"HS_OP_READ": "read", "HS_OP_WRITE": "write", "HS_OP_CONTROL": "control"}
ACCESS = {"HS_OP_ANYONE": "anyone", "HS_OP_SIM": "the sim", "HS_OP_MASTER": "the master",
          "HS_OP_ADMIN": "an administrator", "HS_OP_MEMBER": "ring members",
          "HS_OP_PEER": "peer instances"}


def table_in_code():
    header = (ROOT / "broker" / "hs_fsm.h").read_text().replace("\\\n", " ")
    rows = re.findall(r'X \(HS_OP_\w+,\s*"([a-z._]+)",\s*(HS_OP_\w+),\s*(HS_OP_\w+),'
                      r'\s*(?:"([^"]*)"|NULL)\)', header)
    assert rows, "HS_OP_MAP not found"
    return [(name, KINDS[kind], ACCESS[access]) for name, kind, access, _ in rows]


def routes_in_code():
    header = (ROOT / "broker" / "hs_fsm.h").read_text().replace("\\\n", " ")
    rows = re.findall(r'X \(HS_OP_\w+,\s*"([a-z._]+)",\s*HS_OP_\w+,\s*HS_OP_\w+,'
                      r'\s*"([^"]*)"\)', header)
    assert rows, "HS_OP_MAP's routes not found"
    return rows


def test_the_http_spec_lists_every_route_as_the_code_does():
    spec = (ROOT / "protocol" / "http.md").read_text()
    rows = re.findall(r"^\| `([a-z._]+)` \| `([A-Z]+ /v1/[^`]*)` \|$", spec, re.M)
    assert rows == routes_in_code()


def table_in_spec():
    spec = (ROOT / "protocol" / "homeserver-api.md").read_text()
    rows = re.findall(r"^\| `([a-z._]+)` \| (\w+) \| ([^|(]+?)\s*(?:\(.*\))? \|$", spec, re.M)
    return [(name, kind, who) for name, kind, who in rows]


def test_the_spec_lists_every_operation_as_the_code_does():
    assert table_in_spec() == table_in_code()


def test_every_operation_is_documented_in_its_own_section():
    spec = (ROOT / "protocol" / "homeserver-api.md").read_text()
    sections = set(re.findall(r"^### `([a-z._]+)`", spec, re.M))
    documented_elsewhere = {"trace"}  # trace.md
    assert {name for name, _, _ in table_in_code()} - documented_elsewhere == sections


@pytest.mark.parametrize("op, args", [
    ("entity.delete", {"path": "/x", "consistency": "stale"}),
    ("entity.set_rule", {"path": "/x", "rule": "deny", "consistency": "stale"}),
    ("player.register", {"player": "p", "consistency": "stale"}),
])
def test_only_reads_take_a_consistency(homeserver, op, args):
    with homeserver.client() as client:
        with pytest.raises(ApiError) as refused:
            client.call(op, **args)
    assert refused.value.code == "invalid_argument"
    assert "unknown field 'consistency'" in refused.value.message


def test_admin_operations_are_refused_to_others(homeserver):
    with homeserver.client() as client:
        for op, args in [("cluster.remove", {"raft_id": 2}), ("cluster.transfer", {"to": 1}),
                         ("cluster.add", {"name": "hs9", "raft_id": 9, "raft": "tcp://127.0.0.1:1",
                                          "key": client.public_key.decode()})]:
            with pytest.raises(ApiError) as refused:
                client.call(op, **args)
            assert refused.value.code == "unauthorized", op
            assert f"{op} needs an administrator key" in refused.value.message


@pytest.mark.parametrize("op", [name for name, _, _ in table_in_code()])
def test_every_operation_refuses_an_unknown_field_first(homeserver, op):
    """Every operation's arguments are one schema in the table, control
    operations' too: an unknown field is refused before any value, access
    or work is looked at, with the same error. Asked with the member's
    own key, so ring.forward's access would let it through."""
    with homeserver.client(keys=homeserver.keys) as client:
        with pytest.raises(ApiError) as refused:
            client.call(op, bogus=1)
    assert refused.value.code == "invalid_argument", refused.value.message
    assert refused.value.message == "unknown field 'bogus'"


@pytest.mark.parametrize("op, args, message", [
    ("cluster.remove", {}, "raft_id"),
    ("cluster.remove", {"raft_id": 0}, "raft_id"),
    ("cluster.transfer", {"to": "hs2"}, "to"),
    ("cluster.transfer", {"to": -1}, "to"),
    ("ring.forward", {"principal": "not a key", "request": {"op": "status"}}, "principal"),
    ("ring.forward", {"principal": "x" * 40}, "request"),
    ("trace", {"trace": []}, "trace"),
])
def test_control_arguments_are_checked_before_access(homeserver, op, args, message):
    """A control operation's bad value is refused as a write's is, naming
    the field, whoever calls it (here a key that is neither an
    administrator's nor a member's)."""
    with homeserver.client() as client:
        with pytest.raises(ApiError) as refused:
            client.call(op, **args)
    assert refused.value.code == "invalid_argument", refused.value.message
    assert f"'{message}'" in refused.value.message


def test_a_member_forwards_only_a_well_formed_request(homeserver):
    """ring.forward from a member is served as its inner request, checked
    as any request is; a forward inside a forward is refused."""
    principal = homeserver.keys.public.decode()
    with homeserver.client(keys=homeserver.keys) as client:
        served = client.call("ring.forward", principal=principal,
                             request={"op": "status", "id": 1})
        assert served["node"] == "hs1"
        with pytest.raises(ApiError) as refused:
            client.call("ring.forward", principal=principal,
                        request={"op": "ring.forward", "id": 2})
        assert refused.value.code == "invalid_request"
        with pytest.raises(ApiError) as refused:
            client.call("ring.forward", principal=principal,
                        request={"op": "status", "id": 3, "verbose": True})
        assert refused.value.message == "unknown field 'verbose'"

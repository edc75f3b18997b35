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
          "HS_OP_ADMIN": "an administrator", "HS_OP_MEMBER": "ring members"}


def table_in_code():
    header = (ROOT / "broker" / "hs_fsm.h").read_text().replace("\\\n", " ")
    rows = re.findall(r'X \(HS_OP_\w+,\s*"([a-z._]+)",\s*(HS_OP_\w+),\s*(HS_OP_\w+)\)', header)
    assert rows, "HS_OP_MAP not found"
    return [(name, KINDS[kind], ACCESS[access]) for name, kind, access in rows]


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

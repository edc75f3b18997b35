"""The simulation server's operations are one table (SIM_OP_MAP in
peer/sim_api.h, each one's fields in peer/sim_api.c): the spec's list is
that table, each operation takes the arguments its section lists, and
the sim serves from it."""

import re
from pathlib import Path

import pytest

from simfabric_testing import ApiError

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "protocol" / "sim-api.md"
KINDS = {"SIM_OP_READ": "read", "SIM_OP_WRITE": "write", "SIM_OP_CONTROL": "control"}
ACCESS = {"SIM_OP_CLIENT": "a client"}


def map_in_code():
    """(id, name, kind, access) of every row of SIM_OP_MAP."""
    header = (ROOT / "peer" / "sim_api.h").read_text().replace("\\\n", " ")
    rows = re.findall(r'X \((SIM_OP_\w+),\s*"([a-z._]+)",\s*(SIM_OP_\w+),\s*(SIM_OP_\w+)\)',
                      header)
    assert rows, "SIM_OP_MAP not found"
    return rows


def table_in_code():
    return [(name, KINDS[kind], ACCESS[access]) for _, name, kind, access in map_in_code()]


def table_in_spec():
    rows = re.findall(r"^\| `([a-z._]+)` \| (\w+) \| ([^|(]+?)\s*(?:\(.*\))? \|$",
                      SPEC.read_text(), re.M)
    return [(name, kind, who) for name, kind, who in rows]


def fields_in_code():
    """Each operation's schema in sim_api.c's table, by name."""
    names = {op_id: name for op_id, name, _, _ in map_in_code()}
    source = (ROOT / "peer" / "sim_api.c").read_text()
    rows = re.findall(r"\[(SIM_OP_\w+)\] = \{\s*\{([^}]*)\}", source)
    assert rows, "the schema table not found"
    return {names[op_id]: sorted(re.findall(r'"([a-z_]+)"', fields)) for op_id, fields in rows}


def fields_in_spec():
    """Each operation's arguments as its section's first sentence lists
    them: the backquoted names outside parentheses ("No arguments." for
    none)."""
    sections = re.split(r"^### `([a-z._]+)`\n\n", SPEC.read_text(), flags=re.M)
    fields = {}
    for name, body in zip(sections[1::2], sections[2::2]):
        paragraph = body.split("\n\n")[0].replace("\n", " ")
        while re.search(r"\([^()]*\)", paragraph):
            paragraph = re.sub(r"\([^()]*\)", "", paragraph)
        sentence = paragraph.split(". ")[0]
        fields[name] = sorted(re.findall(r"`([a-z_]+)`", sentence))
    return fields


OPS = [name for name, _, _ in table_in_spec()]


def test_the_spec_lists_every_operation_as_the_code_does():
    assert table_in_spec() == table_in_code()


def test_every_operation_is_documented_in_its_own_section():
    sections = re.findall(r"^### `([a-z._]+)`", SPEC.read_text(), re.M)
    assert sorted(sections) == sorted(name for name, _, _ in table_in_code())


def test_every_operation_takes_the_arguments_its_section_lists():
    assert fields_in_code() == fields_in_spec()


@pytest.mark.parametrize("op", OPS)
def test_every_operation_refuses_an_unknown_field_first(simserver, op):
    """Every operation of the spec is served (not unknown_op), and an
    unknown field is refused before its other arguments are looked at
    (here none: the required ones are missing), as the homeserver says
    it."""
    with simserver.client() as client:
        with pytest.raises(ApiError) as refused:
            client.call(op, bogus=1)
    assert refused.value.code == "invalid_argument", refused.value.message
    assert refused.value.message == "unknown field 'bogus'"


@pytest.mark.parametrize("op", OPS)
def test_every_operation_takes_its_documented_fields(simserver, op):
    """Each argument the spec lists gets past the schema: sent as a value
    no field takes, it is refused by the operation's own check, naming
    it, never as unknown."""
    fields = fields_in_spec()[op]
    with simserver.client() as client:
        reply = client.request(op, **{field: {} for field in fields})
    if not fields:
        assert reply["ok"], reply
        return
    assert not reply["ok"], reply
    assert reply["error"]["code"] == "invalid_argument", reply
    assert not reply["error"]["message"].startswith("unknown field"), reply
    assert any(f"'{field}'" in reply["error"]["message"] for field in fields), reply


@pytest.mark.parametrize("op", ["entity.teleport", "sim.list", "entity.set_rule",
                                "cluster.add", "ring.forward", "player.register"])
def test_an_operation_not_in_the_spec_is_unknown(simserver, op):
    assert op not in OPS
    with simserver.client() as client:
        with pytest.raises(ApiError) as refused:
            client.call(op, bogus=1)
    assert refused.value.code == "unknown_op"
    assert refused.value.message == f"no such operation '{op}'"


def test_a_refused_write_changes_nothing(simserver):
    """An unknown field stops a write before it does anything: no entity
    is created, none updated."""
    with simserver.client() as client:
        with pytest.raises(ApiError):
            client.call("entity.create", path="/ops/a", state="1", colour="red")
        with pytest.raises(ApiError) as missing:
            client.call("entity.get", path="/ops/a")
        assert missing.value.code == "not_found"
        client.call("entity.create", path="/ops/a", state="1")
        with pytest.raises(ApiError):
            client.call("entity.update", path="/ops/a", state="2", colour="red")
        entity = client.call("entity.get", path="/ops/a")
    assert (entity["seq"], entity["state"]) == (1, "1")

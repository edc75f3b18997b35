"""State datagrams (protocol/state-datagram.md) from Python: build, seal
and open them as a simulation server does, to test a sim with raw UDP
(forged, replayed, truncated datagrams) or to read what it sends; and
grants (protocol/grants.md section 3), signed with a ring key of the
test's own to forge them, or taken from the ring's replies.

Sealing uses the machine's libsodium through ctypes; BLAKE2b is Python's
own hashlib.
"""

import ctypes
import ctypes.util
import hashlib
import struct

import zmq.utils.z85

GROUP = b"sf"
HEADER = 36
TAG = 16
VERSION = 2
STATE, ACK = 1, 2
RECORD_UPDATE, RECORD_GRANT = 1, 2

_sodium = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
if _sodium.sodium_init() < 0:
    raise OSError("libsodium cannot start")


def key_bytes(key) -> bytes:
    """A public or secret key as 32 bytes, from Z85 text or bytes."""
    if isinstance(key, str):
        key = key.encode()
    return zmq.utils.z85.decode(key) if len(key) == 40 else key


def x25519(secret: bytes, public: bytes) -> bytes:
    shared = ctypes.create_string_buffer(32)
    if _sodium.crypto_scalarmult(shared, secret, public) != 0:
        raise ValueError("low-order public key")
    return shared.raw


def derive(shared: bytes, sender: bytes, receiver: bytes, session: int) -> bytes:
    """The key of datagrams from SENDER to RECEIVER in SESSION."""
    data = b"simfabric state 1" + shared + sender + receiver + struct.pack(">Q", session)
    return hashlib.blake2b(data, digest_size=32).digest()


def _nonce(header: bytes) -> bytes:
    return header[20:36] + bytes(8)


def seal(key: bytes, header: bytes, body: bytes) -> bytes:
    out = ctypes.create_string_buffer(len(body) + TAG)
    out_size = ctypes.c_ulonglong()
    _sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        out, ctypes.byref(out_size), body, ctypes.c_ulonglong(len(body)),
        header, ctypes.c_ulonglong(len(header)), None, _nonce(header), key)
    return header + out.raw[:out_size.value]


def open_sealed(key: bytes, datagram: bytes) -> bytes | None:
    """The body of DATAGRAM, or None if its tag does not verify."""
    header, sealed = datagram[:HEADER], datagram[HEADER:]
    if len(sealed) < TAG:
        return None
    out = ctypes.create_string_buffer(max(1, len(sealed) - TAG))
    out_size = ctypes.c_ulonglong()
    rc = _sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
        out, ctypes.byref(out_size), None, sealed, ctypes.c_ulonglong(len(sealed)),
        header, ctypes.c_ulonglong(len(header)), _nonce(header), key)
    return out.raw[:out_size.value] if rc == 0 else None


def header(kind: int, sender: bytes, receiver: bytes, session: int, counter: int) -> bytes:
    return b"SD" + bytes([VERSION, kind]) + sender[:8] + receiver[:8] + struct.pack(">QQ", session, counter)


def parse_header(datagram: bytes) -> dict:
    kind = datagram[3]
    session, counter = struct.unpack(">QQ", datagram[20:36])
    return {"kind": kind, "sender": datagram[4:12], "receiver": datagram[12:20],
            "session": session, "counter": counter}


def varint(value: int) -> bytes:
    out = b""
    while value >= 0x80:
        out += bytes([value & 0x7F | 0x80])
        value >>= 7
    return out + bytes([value])


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def state_body(updates) -> bytes:
    """UPDATES: (path, epoch, seq, state bytes) tuples, or (path, epoch,
    seq, state, grant bytes) to put a grant record before the update."""
    body = b""
    for path, epoch, seq, state, *grant in updates:
        if grant and grant[0] is not None:
            body += bytes([RECORD_GRANT]) + grant[0]
        path = path.encode()
        body += (bytes([RECORD_UPDATE]) + varint(len(path)) + path + varint(epoch)
                 + varint(seq) + varint(len(state)) + state)
    return body


def grant_size(data: bytes, at: int = 0) -> int:
    """Bytes of the grant starting at DATA[AT] (grants.md section 3)."""
    path_size = data[at + 3] + 1
    sim_size = data[at + 4 + path_size + 8]
    return 121 + path_size + sim_size


def parse_state_entries(body: bytes) -> list[tuple[str, int, int, bytes, bytes | None]]:
    """(path, epoch, seq, state, grant or None) per update of BODY."""
    updates, at = [], 0
    while at < len(body):
        grant = None
        if body[at] == RECORD_GRANT:
            size = grant_size(body, at + 1)
            grant = body[at + 1:at + 1 + size]
            at += 1 + size
        assert body[at] == RECORD_UPDATE, "not an update record"
        at += 1
        size, at = read_varint(body, at)
        path = body[at:at + size].decode()
        at += size
        epoch, at = read_varint(body, at)
        seq, at = read_varint(body, at)
        size, at = read_varint(body, at)
        updates.append((path, epoch, seq, body[at:at + size], grant))
        at += size
    return updates


def parse_state_body(body: bytes) -> list[tuple[str, int, int, bytes]]:
    return [entry[:4] for entry in parse_state_entries(body)]


#  Grants (grants.md section 3)

GRANT_CONTEXT = b"simfabric grants 2"


def ring_keypair(seed: bytes | None = None) -> tuple[bytes, bytes]:
    """An Ed25519 key pair (public 32 bytes, libsodium secret 64 bytes),
    from SEED (32 bytes) or at random."""
    public = ctypes.create_string_buffer(32)
    secret = ctypes.create_string_buffer(64)
    if seed is None:
        _sodium.crypto_sign_keypair(public, secret)
    else:
        _sodium.crypto_sign_seed_keypair(public, secret, seed)
    return public.raw, secret.raw


def grant_body(path: str, epoch: int, sim: str, key, transfer: int = 0) -> bytes:
    """What a grant's leaf hashes: its fields from path-len to transfer."""
    path, sim = path.encode(), sim.encode()
    return (bytes([len(path) - 1]) + path + struct.pack(">Q", epoch)
            + bytes([len(sim)]) + sim + key_bytes(key) + struct.pack(">Q", transfer))


def _blake2b(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def grant_root(body: bytes, leaves: int, leaf: int, proof: bytes) -> bytes:
    """The root a grant's proof leads to (grants.md section 3)."""
    node, used = _blake2b(b"\x00" + body), 0
    while leaves > 1:
        if leaf ^ 1 < leaves:
            sibling = proof[32 * used:32 * used + 32]
            node = _blake2b(b"\x01" + (sibling + node if leaf % 2 else node + sibling))
            used += 1
        leaf, leaves = leaf // 2, (leaves + 1) // 2
    assert 32 * used == len(proof), "the proof's length does not fit its leaf"
    return node


def grant_signed_message(key_id: int, leaves: int, root: bytes) -> bytes:
    """What the ring signs for a tree of LEAVES grants with root ROOT."""
    return GRANT_CONTEXT + struct.pack(">IB", key_id, leaves) + root


def grant(path: str, epoch: int, sim: str, key, secret: bytes, transfer: int = 0,
          key_id: int = 1) -> bytes:
    """A grant signed alone (a tree of one) with the ring secret key SECRET
    (64 bytes)."""
    body = grant_body(path, epoch, sim, key, transfer)
    signed = grant_signed_message(key_id, 1, grant_root(body, 1, 0, b""))
    signature = ctypes.create_string_buffer(64)
    _sodium.crypto_sign_detached(signature, None, signed,
                                 ctypes.c_ulonglong(len(signed)), secret)
    return b"SG2" + body + struct.pack(">IBB", key_id, 1, 0) + signature.raw


def grant_from_json(value: dict) -> bytes:
    """The binary form of a grant in the ring's JSON form."""
    return (b"SG2" + grant_body(value["path"], value["epoch"], value["sim"], value["key"],
                                value["transfer"])
            + struct.pack(">IBB", value["key_id"], value["leaves"], value["leaf"])
            + zmq.utils.z85.decode(value["proof"].encode())
            + zmq.utils.z85.decode(value["signature"].encode()))


def ack_body(session: int, top: int, bits: int, window: int) -> bytes:
    return struct.pack(">QQQI", session, top, bits, window)


def udp_payload(datagram: bytes) -> bytes:
    """What libzmq's RADIO puts in a UDP packet: group length, group,
    datagram."""
    return bytes([len(GROUP)]) + GROUP + datagram


class Peer:
    """A sender of sealed datagrams to one sim, as key pair (PUBLIC, SECRET)
    in SESSION, with its own counter."""

    def __init__(self, public, secret, receiver_public, session: int):
        self.public = key_bytes(public)
        self.secret = key_bytes(secret)
        self.receiver = key_bytes(receiver_public)
        self.session = session
        self.counter = 0
        shared = x25519(self.secret, self.receiver)
        self.key = derive(shared, self.public, self.receiver, session)

    def state(self, updates, counter: int | None = None) -> bytes:
        if counter is None:
            self.counter += 1
            counter = self.counter
        head = header(STATE, self.public, self.receiver, self.session, counter)
        return seal(self.key, head, state_body(updates))

    def key_from(self, sender_public, session: int) -> bytes:
        """The key a datagram from SENDER_PUBLIC to us in SESSION uses."""
        sender = key_bytes(sender_public)
        return derive(x25519(self.secret, sender), sender, self.public, session)

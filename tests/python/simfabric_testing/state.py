"""State datagrams (protocol/state-datagram.md) from Python: build, seal
and open them as a simulation server does, to test a sim with raw UDP
(forged, replayed, truncated datagrams) or to read what it sends.

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
STATE, ACK = 1, 2

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
    return b"SD" + bytes([1, kind]) + sender[:8] + receiver[:8] + struct.pack(">QQ", session, counter)


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
    """UPDATES: (path, epoch, seq, state bytes) tuples."""
    body = b""
    for path, epoch, seq, state in updates:
        path = path.encode()
        body += varint(len(path)) + path + varint(epoch) + varint(seq) + varint(len(state)) + state
    return body


def parse_state_body(body: bytes) -> list[tuple[str, int, int, bytes]]:
    updates, at = [], 0
    while at < len(body):
        size, at = read_varint(body, at)
        path = body[at:at + size].decode()
        at += size
        epoch, at = read_varint(body, at)
        seq, at = read_varint(body, at)
        size, at = read_varint(body, at)
        updates.append((path, epoch, seq, body[at:at + size]))
        at += size
    return updates


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

"""A CURVE-authenticated client for the simfabric JSON API (pyzmq)."""

import itertools
import json
import time

import zmq

from simfabric_testing.keys import KeyPair


class NoReply(Exception):
    """The daemon did not answer in time."""


class ApiError(Exception):
    """The daemon answered with an error reply."""

    def __init__(self, reply):
        self.reply = reply
        self.code = reply["error"]["code"]
        self.message = reply["error"]["message"]
        super().__init__(f"{self.code}: {self.message}")


class ApiClient:
    """One DEALER connection to a daemon's API, as one principal.

    The server's public key is pinned; without KEYS a fresh key pair is
    made, so every client is a distinct principal.
    """

    _ids = itertools.count(1)

    def __init__(self, endpoint: str, server_key: bytes, keys: KeyPair | None = None,
                 timeout: float = 5.0, context: zmq.Context | None = None):
        self.context = context or zmq.Context.instance()
        self.endpoint = endpoint
        self.timeout = timeout
        if keys is None:
            public, secret = zmq.curve_keypair()
        else:
            public, secret = keys.public, keys.secret
        self.public_key = public
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.linger = 0
        self.socket.curve_serverkey = server_key
        self.socket.curve_publickey = public
        self.socket.curve_secretkey = secret
        self.socket.connect(endpoint)
        self.events = []

    def close(self):
        self.socket.close(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, *frames: bytes):
        """Send FRAMES unchanged as one message."""
        self.socket.send_multipart(list(frames))

    def recv_raw(self, timeout: float | None = None) -> list[bytes]:
        """The next reply message's frames; NoReply on timeout."""
        timeout = self.timeout if timeout is None else timeout
        if not self.socket.poll(int(timeout * 1000)):
            raise NoReply(f"no reply from {self.endpoint} in {timeout} s")
        return self.socket.recv_multipart()

    def request(self, op: str, timeout: float | None = None, **args) -> dict:
        """Send OP with ARGS and return the reply object, ok or not."""
        request_id = next(self._ids)
        body = {"op": op, "id": request_id, **args}
        self.socket.send(json.dumps(body).encode())
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NoReply(f"no reply to {op} from {self.endpoint}")
            reply = json.loads(self.recv_raw(remaining)[-1])
            if "event" in reply and "ok" not in reply:
                self.events.append(reply)  # a subscription's, kept for next_event
            elif reply.get("id") in (request_id, None):
                return reply

    def next_event(self, timeout: float | None = None) -> dict:
        """The next event of this connection's subscriptions (sim API
        `subscribe`); NoReply if none comes in time."""
        if self.events:
            return self.events.pop(0)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NoReply(f"no event from {self.endpoint}")
            message = json.loads(self.recv_raw(remaining)[-1])
            if "event" in message and "ok" not in message:
                return message

    def call(self, op: str, timeout: float | None = None, **args) -> dict:
        """Like request, but raise ApiError on an error reply."""
        reply = self.request(op, timeout=timeout, **args)
        if not reply.get("ok"):
            raise ApiError(reply)
        return reply


#  Error codes after which the same request may be sent again.
RETRYABLE = {"not_leader", "unavailable", "timeout"}


def call_any(members, op: str, deadline: float, **args) -> dict:
    """Call OP on the first live member of MEMBERS that answers, retrying
    through failovers until DEADLINE (time.monotonic). Raises ApiError for
    a final error and NoReply when time runs out."""
    last = None
    while time.monotonic() < deadline:
        for member in members:
            if not member.alive():
                continue
            with member.client(timeout=1.0) as client:
                try:
                    reply = client.request(op, **args)
                except NoReply as error:
                    last = error
                    continue
            if reply.get("ok"):
                return reply
            if reply["error"]["code"] not in RETRYABLE:
                raise ApiError(reply)
            last = ApiError(reply)
        time.sleep(0.02)
    raise NoReply(f"{op} did not succeed before the deadline: {last}")


def ring_paths(members, prefix: str, deadline: float) -> list[str]:
    """Every entity path under PREFIX as the ring lists it, page by page,
    each page through call_any: a leadership change between two pages (a
    read the old leader could not confirm answers not_leader) is retried
    on whichever member answers, as a client of the ring should."""
    paths, after = [], None
    while True:
        args = {"prefix": prefix, "limit": 1000}
        if after:
            args["after"] = after
        page = call_any(members, "entity.list", deadline, **args)
        paths += [entity["path"] for entity in page["entities"]]
        after = page["next"]
        if not after:
            return paths

"""Userspace relays for the impairments this kernel's qdiscs cannot make
(there is no netem): a UDP relay that delays, reorders and duplicates
datagrams, and a TCP relay that delays a stream both ways. Put one between
a sender and a receiver by giving the sender the relay's address as the
receiver's endpoint.

    relay = UdpRelay(("10.77.20.254", 0), ("10.77.20.2", 7200),
                     delay_ms=(1, 20), duplicate=0.05)
    ...
    relay.close()
"""

import collections
import heapq
import random
import select
import socket
import threading
import time


class UdpRelay:
    """Forward every datagram received on LISTEN to TARGET after a random
    delay in DELAY_MS (so datagrams overtake each other), sending a second
    copy with probability DUPLICATE. Runs on its own thread until close."""

    def __init__(self, listen, target, delay_ms=(0, 0), duplicate=0.0, seed=1):
        self.target = target
        self.delay_ms = delay_ms
        self.duplicate = duplicate
        self.random = random.Random(seed)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.socket.bind(listen)
        self.address = self.socket.getsockname()
        self.received = self.sent = self.duplicated = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        due = []  # (time, order, payload)
        order = 0
        while not self._stop.is_set():
            timeout = max(0.0, due[0][0] - time.monotonic()) if due else 0.05
            readable, _, _ = select.select([self.socket], [], [], min(timeout, 0.05))
            now = time.monotonic()
            if readable:
                payload, _ = self.socket.recvfrom(65536)
                self.received += 1
                copies = 2 if self.random.random() < self.duplicate else 1
                self.duplicated += copies - 1
                for _ in range(copies):
                    delay = self.random.uniform(*self.delay_ms) / 1000
                    heapq.heappush(due, (now + delay, order, payload))
                    order += 1
            while due and due[0][0] <= now:
                _, _, payload = heapq.heappop(due)
                self.socket.sendto(payload, self.target)
                self.sent += 1

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.socket.close()


class TcpRelay:
    """Accept TCP connections on LISTEN and join each to a new connection
    to TARGET, delivering every byte DELAY_MS after it arrived, in order,
    both ways: a link between hosts DELAY_MS apart one way. Runs on its
    own thread until close."""

    def __init__(self, listen, target, delay_ms=0.0):
        self.target = target
        self.delay = delay_ms / 1000
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(listen)
        self.listener.listen(64)
        self.address = self.listener.getsockname()
        self.pending = {}  # socket -> deque of (due, bytes) to write to it
        self.peer = {}     # socket -> the socket it is joined to
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _join(self):
        inside, _ = self.listener.accept()
        try:
            outside = socket.create_connection(self.target, timeout=2)
        except OSError:
            inside.close()
            return
        for one, other in ((inside, outside), (outside, inside)):
            one.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            one.setblocking(False)
            self.peer[one] = other
            self.pending[one] = collections.deque()

    def _drop(self, one):
        for end in (one, self.peer.get(one)):
            if end in self.peer:
                del self.peer[end]
                del self.pending[end]
                end.close()

    def _run(self):
        while not self._stop.is_set():
            now = time.monotonic()
            due = [q[0][0] for q in self.pending.values() if q]
            timeout = min([max(0.0, d - now) for d in due] + [0.05])
            readable, _, _ = select.select([self.listener, *self.peer], [], [], timeout)
            now = time.monotonic()
            for one in readable:
                if one is self.listener:
                    self._join()
                    continue
                if one not in self.peer:
                    continue
                try:
                    data = one.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self._drop(one)
                    continue
                self.pending[self.peer[one]].append((now + self.delay, data))
            for end, queue in list(self.pending.items()):
                while queue and queue[0][0] <= now:
                    _, data = queue[0]
                    try:
                        sent = end.send(data)
                    except BlockingIOError:
                        break
                    except OSError:
                        self._drop(end)
                        break
                    if sent < len(data):
                        queue[0] = (queue[0][0], data[sent:])
                        break
                    queue.popleft()

    def close(self):
        self._stop.set()
        self._thread.join(5)
        for one in list(self.peer):
            self._drop(one)
        self.listener.close()

"""A userspace UDP relay that delays, reorders and duplicates datagrams,
for the impairments this kernel's qdiscs cannot make (there is no netem):
put it between a sender and a receiver by registering the relay's address
as the receiver's endpoint.

    relay = UdpRelay(("10.77.20.254", 0), ("10.77.20.2", 7200),
                     delay_ms=(1, 20), duplicate=0.05)
    ...
    relay.close()
"""

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

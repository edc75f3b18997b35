"""fabricctl watch (protocol/operations.md section 4) against a real
ring: every change under the prefix printed once, in order, across the
kill of the member it follows and of the leader; a gap it cannot fill
said as such, with the state after it; SIGINT ends it with 0."""

import queue
import signal
import subprocess
import threading
import time

from simfabric_testing import binary, call_any, wait_for, wait_leader


class Watch:
    """fabricctl watch as a process, its lines collected as they come."""

    def __init__(self, member, *args):
        self.process = subprocess.Popen(
            [str(binary("fabricctl")), "watch", *args, "--server", member.endpoint,
             "--server-key", str(member.keys.public_path), "--timeout", "1500"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines, self.errors = queue.Queue(), []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._errors, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def _errors(self):
        for line in self.process.stderr:
            self.errors.append(line)

    def until(self, predicate, timeout=30):
        """Lines until one satisfies PREDICATE (returned with it last)."""
        got, deadline = [], time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no such line in {timeout} s: {got} {self.errors}")
            got.append(line)
            if predicate(line):
                return got

    def stop(self):
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=15)


def _create(ring, paths):
    deadline = time.monotonic() + 30
    return [call_any(ring, "entity.create", deadline, path=path)["index"] for path in paths]


def test_watch_prints_every_change_once_across_member_and_leader_kills(ring):
    wait_leader(ring)
    followed = ring[1]
    watch = Watch(followed, "entity:/w/")
    try:
        wait_for(lambda: any("following" in line for line in watch.errors), timeout=15,
                 what="watch following a member")
        _create(ring, ["/other/x"])  # not under the prefix: not printed
        indexes = _create(ring, [f"/w/{n:02d}" for n in range(10)])
        followed.kill()
        indexes += _create([m for m in ring if m is not followed],
                           [f"/w/{n:02d}" for n in range(10, 20)])
        # Only another member can tell it these.
        lines = watch.until(lambda line: " entity:/w/19 " in line, timeout=60)
        # (Its stderr is read by another thread: wait for the line.)
        wait_for(lambda: sum("following" in line for line in watch.errors) >= 2, timeout=10,
                 what=f"a second 'following' line: {watch.errors}")
        followed.start()
        leader, _ = wait_leader(ring)
        next(m for m in ring if m.name == leader).kill()
        live = [m for m in ring if m.alive()]
        wait_leader(live)
        indexes += _create(live, [f"/w/{n:02d}" for n in range(20, 30)])
        lines += watch.until(lambda line: " entity:/w/29 " in line, timeout=60)
        printed = [line for line in lines if " entity:/w/" in line]
        assert [line.split()[1] for line in printed] == [f"entity:/w/{n:02d}"
                                                         for n in range(30)], lines
        assert [int(line.split()[0]) for line in printed] == indexes
        assert all(line.split()[2] == "entity.create" for line in printed)
        assert not any("gap:" in line or "/other/" in line for line in lines), lines
        assert watch.stop() == 0
    finally:
        if watch.process.poll() is None:
            watch.process.kill()


def test_watch_says_gap_when_the_member_kept_too_little(tmp_path):
    from simfabric_testing import Daemon, running
    member = Daemon("homeserver", "hs1", tmp_path / "hs1", extra={"events_kept": 3})
    member.ring = [member]
    member.write_config()
    with running([member]):
        wait_leader([member])
        watch = Watch(member, "--json")
        try:
            wait_for(lambda: any("following" in line for line in watch.errors), timeout=15,
                     what="watch following the member")
            # Stop the watch's process in its tracks while changes pass.
            watch.process.send_signal(signal.SIGSTOP)
            _create([member], [f"/g/{n}" for n in range(20)])
            # 20 changes published to a stopped reader are all queued for
            # it: to make a gap, restart the member (its feed restarts)
            # and add more than it keeps.
            member.stop()
            member.start()
            wait_leader([member])
            _create([member], [f"/g/{n}" for n in range(20, 30)])
            watch.process.send_signal(signal.SIGCONT)
            lines = watch.until(lambda line: '"/g/29"' in line, timeout=60)
            assert watch.stop() == 0
        finally:
            if watch.process.poll() is None:
                watch.process.kill()
    text = "\n".join(lines)
    # Either every change came through the queue, or the lost ones are
    # said as a gap and the state follows: never skipped in silence.
    paths = [f'"/g/{n}"' for n in range(30)]
    if "gap:" in text:
        assert all(path in text for path in paths[20:])
        after_gap = text.split("gap:", 1)[1]
        assert all(path in after_gap for path in paths[:20] if path not in
                   text.split("gap:", 1)[0])
    else:
        assert all(path in text for path in paths)

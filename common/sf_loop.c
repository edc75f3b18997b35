/*  sf_loop: a daemon actor's reactor on one epoll. */

#include "common/sf_loop.h"
#include "common/sf_time.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define S_MAX_EVENTS 32

typedef struct {
    zsock_t *socket;  //  NULL for a plain descriptor
    void *handle;     //  the libzmq socket under SOCKET
    int fd;
    sf_loop_reader_fn *reader_fn;
    sf_loop_fd_fn *fd_fn;
    void *arg;
    bool signalled;  //  epoll reported it (or it is new): ask it this round
    bool dead;       //  ended; freed at the end of the round
} s_reader_t;

typedef struct {
    int id;
    uint64_t delay_us;
    uint64_t due_us;
    size_t times;  //  left to fire; 0: until ended
    sf_loop_timer_fn *fn;
    void *arg;
    bool dead;
} s_timer_t;

struct _sf_loop_t {
    int epoll;
    s_reader_t **readers;  //  owned, in the order they were added
    size_t reader_count;
    size_t reader_capacity;
    s_timer_t *timers;
    size_t timer_count;
    size_t timer_capacity;
    int next_timer_id;
    bool dead_readers;  //  some reader awaits freeing
    bool stopped;
    sf_loop_counters_t counters;
};

sf_loop_t *
sf_loop_new (void)
{
    sf_loop_t *self = (sf_loop_t *) calloc (1, sizeof (sf_loop_t));
    if (!self)
        return NULL;
    self->epoll = epoll_create1 (EPOLL_CLOEXEC);
    if (self->epoll == -1) {
        free (self);
        return NULL;
    }
    self->next_timer_id = 1;
    return self;
}

void
sf_loop_destroy (sf_loop_t **self_p)
{
    assert (self_p);
    sf_loop_t *self = *self_p;
    if (!self)
        return;
    for (size_t at = 0; at < self->reader_count; at++)
        free (self->readers [at]);
    free (self->readers);
    free (self->timers);
    close (self->epoll);
    free (self);
    *self_p = NULL;
}

static s_reader_t *
s_reader_add (sf_loop_t *self, int fd)
{
    if (self->reader_count == self->reader_capacity) {
        size_t capacity = self->reader_capacity ? self->reader_capacity * 2 : 8;
        s_reader_t **readers = (s_reader_t **) realloc (
            self->readers, capacity * sizeof (s_reader_t *));
        if (!readers)
            return NULL;
        self->readers = readers;
        self->reader_capacity = capacity;
    }
    s_reader_t *reader = (s_reader_t *) calloc (1, sizeof (s_reader_t));
    if (!reader)
        return NULL;
    reader->fd = fd;
    //  Ask it at once: a socket may hold messages with its ZMQ_FD quiet.
    reader->signalled = true;
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = reader};
    if (epoll_ctl (self->epoll, EPOLL_CTL_ADD, fd, &event) == -1) {
        free (reader);
        return NULL;
    }
    self->readers [self->reader_count++] = reader;
    return reader;
}

static void
s_reader_end (sf_loop_t *self, s_reader_t *reader)
{
    //  Out of epoll now, before the caller closes the descriptor; freed
    //  when no round is walking the list.
    epoll_ctl (self->epoll, EPOLL_CTL_DEL, reader->fd, NULL);
    reader->dead = true;
    self->dead_readers = true;
}

static void
s_readers_reap (sf_loop_t *self)
{
    if (!self->dead_readers)
        return;
    size_t kept = 0;
    for (size_t at = 0; at < self->reader_count; at++) {
        if (self->readers [at]->dead)
            free (self->readers [at]);
        else
            self->readers [kept++] = self->readers [at];
    }
    self->reader_count = kept;
    self->dead_readers = false;
}

int
sf_loop_reader (sf_loop_t *self, zsock_t *socket, sf_loop_reader_fn *fn,
                void *arg)
{
    assert (self && socket && fn);
    for (size_t at = 0; at < self->reader_count; at++)
        if (self->readers [at]->socket == socket && !self->readers [at]->dead)
            return -1;
    int fd = zsock_fd (socket);
    if (fd == -1)
        return -1;
    s_reader_t *reader = s_reader_add (self, fd);
    if (!reader)
        return -1;
    reader->socket = socket;
    reader->handle = zsock_resolve (socket);
    reader->reader_fn = fn;
    reader->arg = arg;
    return 0;
}

void
sf_loop_reader_end (sf_loop_t *self, zsock_t *socket)
{
    assert (self);
    for (size_t at = 0; at < self->reader_count; at++)
        if (self->readers [at]->socket == socket && !self->readers [at]->dead)
            s_reader_end (self, self->readers [at]);
}

int
sf_loop_fd (sf_loop_t *self, int fd, sf_loop_fd_fn *fn, void *arg)
{
    assert (self && fn);
    s_reader_t *reader = s_reader_add (self, fd);
    if (!reader)
        return -1;
    //  A descriptor is level-triggered: epoll alone says when to call.
    reader->signalled = false;
    reader->fd_fn = fn;
    reader->arg = arg;
    return 0;
}

void
sf_loop_fd_end (sf_loop_t *self, int fd)
{
    assert (self);
    for (size_t at = 0; at < self->reader_count; at++) {
        s_reader_t *reader = self->readers [at];
        if (!reader->socket && reader->fd == fd && !reader->dead)
            s_reader_end (self, reader);
    }
}

int
sf_loop_timer (sf_loop_t *self, size_t delay_ms, size_t times,
               sf_loop_timer_fn *fn, void *arg)
{
    assert (self && fn);
    if (self->timer_count == self->timer_capacity) {
        size_t capacity = self->timer_capacity ? self->timer_capacity * 2 : 8;
        s_timer_t *timers =
            (s_timer_t *) realloc (self->timers, capacity * sizeof (s_timer_t));
        if (!timers)
            return -1;
        self->timers = timers;
        self->timer_capacity = capacity;
    }
    s_timer_t *timer = &self->timers [self->timer_count++];
    timer->id = self->next_timer_id++;
    if (self->next_timer_id <= 0)  //  wrapped after 2^31 timers
        self->next_timer_id = 1;
    timer->delay_us = (uint64_t) delay_ms * 1000;
    timer->due_us = sf_time_mono_us () + timer->delay_us;
    timer->times = times;
    timer->fn = fn;
    timer->arg = arg;
    timer->dead = false;
    return timer->id;
}

void
sf_loop_timer_end (sf_loop_t *self, int timer_id)
{
    assert (self);
    //  Marked, not removed: a round may be walking the array.
    for (size_t at = 0; at < self->timer_count; at++)
        if (self->timers [at].id == timer_id)
            self->timers [at].dead = true;
}

static void
s_timers_reap (sf_loop_t *self)
{
    size_t kept = 0;
    for (size_t at = 0; at < self->timer_count; at++)
        if (!self->timers [at].dead)
            self->timers [kept++] = self->timers [at];
    self->timer_count = kept;
}

//  Fire the timers that are due; returns how many fired, or -1 if one ended
//  the loop. Timers added meanwhile wait for the next round.
static int
s_timers_run (sf_loop_t *self)
{
    uint64_t now = sf_time_mono_us ();
    size_t count = self->timer_count;
    int fired = 0;
    for (size_t at = 0; at < count && !self->stopped; at++) {
        //  By index: a handler adding a timer may move the array.
        s_timer_t *timer = &self->timers [at];
        if (timer->dead || timer->due_us > now)
            continue;
        if (timer->times && --timer->times == 0)
            timer->dead = true;
        else
            timer->due_us = now + timer->delay_us;
        int id = timer->id;
        fired++;
        self->counters.calls++;
        if (timer->fn (self, id, timer->arg) == -1)
            self->stopped = true;
    }
    s_timers_reap (self);
    return self->stopped ? -1 : fired;
}

//  Milliseconds until the first timer is due (rounded up), or -1 for none.
static int
s_timeout_ms (sf_loop_t *self)
{
    if (self->timer_count == 0)
        return -1;
    uint64_t first = UINT64_MAX;
    for (size_t at = 0; at < self->timer_count; at++)
        if (self->timers [at].due_us < first)
            first = self->timers [at].due_us;
    uint64_t now = sf_time_mono_us ();
    if (first <= now)
        return 0;
    uint64_t wait_ms = (first - now + 999) / 1000;
    return wait_ms > INT32_MAX ? INT32_MAX : (int) wait_ms;
}

//  Whether the reader has input: for a socket, ask libzmq (which also
//  processes its pending commands and so quiets its ZMQ_FD).
static bool
s_readable (sf_loop_t *self, s_reader_t *reader, bool sweep)
{
    if (!reader->socket) {
        bool signalled = reader->signalled;
        reader->signalled = false;
        return signalled;
    }
    if (!sweep && !reader->signalled)
        return false;
    reader->signalled = false;
    self->counters.asks++;
    int events = 0;
    size_t size = sizeof (events);
    if (zmq_getsockopt (reader->handle, ZMQ_EVENTS, &events, &size) == -1) {
        if (errno == ETERM)
            self->stopped = true;
        return false;
    }
    return (events & ZMQ_POLLIN) != 0;
}

//  Call each readable reader once; returns how many were called.
static size_t
s_readers_run (sf_loop_t *self, bool sweep)
{
    size_t called = 0;
    //  By index, to the count at the start: handlers may add readers (asked
    //  next round, being new) and end them (marked dead, skipped here).
    size_t count = self->reader_count;
    for (size_t at = 0; at < count && !self->stopped; at++) {
        s_reader_t *reader = self->readers [at];
        if (reader->dead || !s_readable (self, reader, sweep))
            continue;
        called++;
        self->counters.calls++;
        int rc = reader->socket
                     ? reader->reader_fn (self, reader->socket, reader->arg)
                     : reader->fd_fn (self, reader->fd, reader->arg);
        if (rc == -1)
            self->stopped = true;
    }
    s_readers_reap (self);
    return called;
}

void
sf_loop_stop (sf_loop_t *self)
{
    assert (self);
    self->stopped = true;
}

int
sf_loop_start (sf_loop_t *self)
{
    assert (self);
    self->stopped = false;
    bool sweep = true;  //  ask every socket this round
    struct epoll_event events [S_MAX_EVENTS];
    while (!self->stopped && !zsys_interrupted) {
        int fired = s_timers_run (self);
        if (fired == -1)
            break;
        size_t called = s_readers_run (self, sweep);
        if (self->stopped)
            break;
        //  After any handler, every socket is asked again (see the header);
        //  the wait is then only a look at what epoll holds.
        sweep = called > 0 || fired > 0;
        int timeout = sweep ? 0 : s_timeout_ms (self);
        self->counters.waits++;
        int ready = epoll_wait (self->epoll, events, S_MAX_EVENTS, timeout);
        if (ready == -1) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        for (int at = 0; at < ready; at++)
            ((s_reader_t *) events [at].data.ptr)->signalled = true;
    }
    return 0;
}

void
sf_loop_counters (sf_loop_t *self, sf_loop_counters_t *counters)
{
    assert (self && counters);
    *counters = self->counters;
}

//  --------------------------------------------------------------------------
//  Self test

typedef struct {
    zsock_t *peer;  //  the other end, for handlers that answer
    int received;
    int fired;
    int ended_timer;
    bool timed_out;
    zsock_t *added;  //  a reader one handler adds
    int added_received;
} s_test_t;

static int
s_test_count (sf_loop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop;
    s_test_t *test = (s_test_t *) arg;
    char *text = zstr_recv (reader);
    assert (text);
    bool stop = streq (text, "stop");
    free (text);
    test->received++;
    return stop ? -1 : 0;
}

static int
s_test_tick (sf_loop_t *loop, int timer_id, void *arg)
{
    (void) loop, (void) timer_id;
    ((s_test_t *) arg)->fired++;
    return 0;
}

static int
s_test_end_self (sf_loop_t *loop, int timer_id, void *arg)
{
    sf_loop_timer_end (loop, timer_id);
    ((s_test_t *) arg)->ended_timer++;
    return 0;
}

static int
s_test_stop (sf_loop_t *loop, int timer_id, void *arg)
{
    (void) timer_id, (void) arg;
    sf_loop_stop (loop);
    return 0;
}

static int
s_test_time_out (sf_loop_t *loop, int timer_id, void *arg)
{
    (void) loop, (void) timer_id;
    ((s_test_t *) arg)->timed_out = true;
    return -1;
}

//  Reads "go" from b, then makes d readable with d's ZMQ_FD quiet: c sends
//  to d, and asking d's events processes d's commands. A loop that waited
//  only on signalled descriptors would never call d's reader.
static int
s_test_quiet (sf_loop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop;
    s_test_t *test = (s_test_t *) arg;
    char *text = zstr_recv (reader);
    assert (text && streq (text, "go"));
    free (text);
    zstr_send (test->peer, "stop");  //  test->peer is c
    zsock_t *d = test->added;
    assert (zsock_events (d) & ZMQ_POLLIN);
    test->added = NULL;
    return 0;
}

static int
s_test_add (sf_loop_t *loop, zsock_t *reader, void *arg)
{
    int rc;
    s_test_t *test = (s_test_t *) arg;
    char *text = zstr_recv (reader);
    assert (text);
    free (text);
    //  End this reader and add another, from inside a handler.
    sf_loop_reader_end (loop, reader);
    rc = sf_loop_reader (loop, test->added, s_test_count, test);
    assert (rc == 0);
    return 0;
}

static int
s_test_fd (sf_loop_t *loop, int fd, void *arg)
{
    ssize_t rc;
    s_test_t *test = (s_test_t *) arg;
    char byte;
    rc = read (fd, &byte, 1);
    assert (rc == 1);
    test->received++;
    if (byte == 'x') {
        sf_loop_fd_end (loop, fd);
        return -1;
    }
    return 0;
}

int
sf_loop_test (bool verbose)
{
    int rc;
    if (verbose)
        printf (" * sf_loop: ");

    //  A reader handles every message; -1 from a handler ends the loop.
    {
        zsock_t *a = zsock_new_pair ("@inproc://sf_loop_a");
        zsock_t *b = zsock_new_pair (">inproc://sf_loop_a");
        sf_loop_t *loop = sf_loop_new ();
        assert (loop);
        s_test_t test = {0};
        rc = sf_loop_reader (loop, b, s_test_count, &test);
        assert (rc == 0);
        rc = sf_loop_reader (loop, b, s_test_count, &test);
        assert (rc == -1);
        for (int index = 0; index < 5; index++)
            zstr_send (a, "hello");
        zstr_send (a, "stop");
        sf_loop_timer (loop, 2000, 1, s_test_time_out, &test);
        rc = sf_loop_start (loop);
        assert (rc == 0);
        assert (test.received == 6 && !test.timed_out);
        //  Ended, the reader is not called for what follows.
        sf_loop_reader_end (loop, b);
        zstr_send (a, "late");
        sf_loop_timer (loop, 30, 1, s_test_stop, &test);
        sf_loop_start (loop);
        assert (test.received == 6);
        sf_loop_destroy (&loop);
        sf_loop_destroy (&loop);
        zsock_destroy (&a);
        zsock_destroy (&b);
    }
    //  Timers: repeated, once, ended from inside, in due order.
    {
        sf_loop_t *loop = sf_loop_new ();
        s_test_t test = {0};
        sf_loop_timer (loop, 5, 3, s_test_tick, &test);
        sf_loop_timer (loop, 1, 0, s_test_end_self, &test);
        int never = sf_loop_timer (loop, 10, 0, s_test_time_out, &test);
        sf_loop_timer_end (loop, never);
        sf_loop_timer_end (loop, 12345);
        uint64_t start = sf_time_mono_ms ();
        sf_loop_timer (loop, 60, 1, s_test_stop, &test);
        sf_loop_start (loop);
        uint64_t took = sf_time_mono_ms () - start;
        assert (test.fired == 3);
        assert (test.ended_timer == 1);
        assert (!test.timed_out);
        assert (took >= 60 && took < 2000);
        sf_loop_destroy (&loop);
    }
    //  A socket made readable by another handler, its ZMQ_FD quiet, is read.
    {
        zsock_t *a = zsock_new_pair ("@inproc://sf_loop_b");
        zsock_t *b = zsock_new_pair (">inproc://sf_loop_b");
        zsock_t *c = zsock_new_pair ("@inproc://sf_loop_d");
        zsock_t *d = zsock_new_pair (">inproc://sf_loop_d");
        sf_loop_t *loop = sf_loop_new ();
        s_test_t test = {.peer = c, .added = d};
        rc = sf_loop_reader (loop, b, s_test_quiet, &test);
        assert (rc == 0);
        rc = sf_loop_reader (loop, d, s_test_count, &test);
        assert (rc == 0);
        sf_loop_timer (loop, 2000, 1, s_test_time_out, &test);
        zstr_send (a, "go");
        rc = sf_loop_start (loop);
        assert (rc == 0);
        assert (test.received == 1 && !test.timed_out);
        sf_loop_destroy (&loop);
        zsock_destroy (&a);
        zsock_destroy (&b);
        zsock_destroy (&c);
        zsock_destroy (&d);
    }
    //  Readers added and ended inside handlers; plain descriptors.
    {
        zsock_t *a = zsock_new_pair ("@inproc://sf_loop_e");
        zsock_t *b = zsock_new_pair (">inproc://sf_loop_e");
        zsock_t *c = zsock_new_pair ("@inproc://sf_loop_f");
        zsock_t *d = zsock_new_pair (">inproc://sf_loop_f");
        int pipes [2];
        rc = pipe (pipes);
        assert (rc == 0);
        sf_loop_t *loop = sf_loop_new ();
        s_test_t test = {.added = d};
        rc = sf_loop_reader (loop, b, s_test_add, &test);
        assert (rc == 0);
        rc = sf_loop_fd (loop, pipes [0], s_test_fd, &test);
        assert (rc == 0);
        sf_loop_timer (loop, 2000, 1, s_test_time_out, &test);
        zstr_send (a, "add");
        zstr_send (a, "ignored");  //  b's reader has ended by then
        zstr_send (c, "one");
        zstr_send (c, "stop");
        rc = sf_loop_start (loop);
        assert (rc == 0);
        assert (test.received == 2 && !test.timed_out);
        ssize_t written = write (pipes [1], "ab", 2);
        assert (written == 2);
        written = write (pipes [1], "x", 1);
        assert (written == 1);
        rc = sf_loop_start (loop);
        assert (rc == 0);
        assert (test.received == 5 && !test.timed_out);
        sf_loop_counters_t counters;
        sf_loop_counters (loop, &counters);
        assert (counters.calls >= 6 && counters.asks >= 3
                && counters.waits >= 1);
        sf_loop_destroy (&loop);
        close (pipes [0]);
        close (pipes [1]);
        zsock_destroy (&a);
        zsock_destroy (&b);
        zsock_destroy (&c);
        zsock_destroy (&d);
    }
    if (verbose)
        printf ("OK\n");
    return 0;
}

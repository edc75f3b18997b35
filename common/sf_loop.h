/*  sf_loop: a daemon actor's reactor: ZeroMQ sockets, plain file
    descriptors and timers, in the shape of CZMQ's zloop.

    Why not zloop: zloop waits in zmq_poll, which asks every socket for
    ZMQ_EVENTS before and after each wait, and each of those asks costs a
    poll (2) and a getpid (2) even for a socket with nothing to say. Under
    load a simulation server paid for eight sockets on every wakeup. This
    loop waits in one epoll on the sockets' ZMQ_FD and asks ZMQ_EVENTS only
    where it must:

    - of a socket whose ZMQ_FD is signalled (commands are pending for it);
    - of every socket after any handler ran, because a send on a socket
      processes that socket's pending commands, which can make it readable
      while its ZMQ_FD stays quiet (the descriptor is edge-like); so the loop
      never waits while a message sits unread;
    - of a reader just added.

    A reader's handler is called once per round while its socket is readable
    (it may read one message or several). Handlers and timers may add and end
    readers and timers, their own included. Any handler returning -1 ends the
    loop, as does SIGINT or SIGTERM (zsys_interrupted) or sf_loop_stop.
    Timers have millisecond delays and fire in order of due time. */

#ifndef SF_LOOP_H_INCLUDED
#define SF_LOOP_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct _sf_loop_t sf_loop_t;

//  Called while READER is readable.
typedef int (sf_loop_reader_fn) (sf_loop_t *loop, zsock_t *reader, void *arg);

//  Called while the descriptor FD is readable (level-triggered).
typedef int (sf_loop_fd_fn) (sf_loop_t *loop, int fd, void *arg);

//  Called when timer TIMER_ID is due.
typedef int (sf_loop_timer_fn) (sf_loop_t *loop, int timer_id, void *arg);

//  A loop with no readers or timers, or NULL if epoll cannot be had.
sf_loop_t *sf_loop_new (void);

//  Destroy the loop (not the sockets it watched).
void sf_loop_destroy (sf_loop_t **self_p);

//  Watch SOCKET for input. At most one reader per socket. Returns 0 or -1.
int sf_loop_reader (sf_loop_t *self, zsock_t *socket, sf_loop_reader_fn *fn,
                    void *arg);

//  Stop watching SOCKET; call it before destroying the socket. Safe for an
//  unknown socket and from inside any handler.
void sf_loop_reader_end (sf_loop_t *self, zsock_t *socket);

//  Watch descriptor FD for input. Returns 0 or -1.
int sf_loop_fd (sf_loop_t *self, int fd, sf_loop_fd_fn *fn, void *arg);

//  Stop watching descriptor FD.
void sf_loop_fd_end (sf_loop_t *self, int fd);

//  Call FN every DELAY_MS milliseconds, TIMES times (0: until ended). Returns
//  the timer's id (> 0) or -1.
int sf_loop_timer (sf_loop_t *self, size_t delay_ms, size_t times,
                   sf_loop_timer_fn *fn, void *arg);

//  End timer TIMER_ID; safe for an ended or unknown id.
void sf_loop_timer_end (sf_loop_t *self, int timer_id);

//  Make sf_loop_start return after the current handler.
void sf_loop_stop (sf_loop_t *self);

//  Run until a handler returns -1, sf_loop_stop, or an interrupt. Returns 0,
//  or -1 if epoll failed.
int sf_loop_start (sf_loop_t *self);

//  Counters for benchmarks and tests: rounds waited, ZMQ_EVENTS asked.
typedef struct {
    uint64_t waits;
    uint64_t asks;
    uint64_t calls;
} sf_loop_counters_t;

void sf_loop_counters (sf_loop_t *self, sf_loop_counters_t *counters);

//  Self test; returns 0 on success.
int sf_loop_test (bool verbose);

#endif

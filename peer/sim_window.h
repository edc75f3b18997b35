/*  sim_window: the anti-replay window of one sender's session (RFC 6479,
    as WireGuard uses it): which of the last SIM_WINDOW_SIZE counters below
    the highest accepted one were seen.

    A value type, embedded in the receiver's per-sender state, no I/O and
    no allocation. Check before decrypting; mark only after the tag
    verified, so a forged datagram cannot move the window. */

#ifndef SIM_WINDOW_H_INCLUDED
#define SIM_WINDOW_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

//  Counters below the top that are still told apart from replays.
#define SIM_WINDOW_SIZE 2048
//  The bitmap is one word longer than the window, so the word holding the
//  top never shares bits with the oldest counters still inside.
#define SIM_WINDOW_WORDS (SIM_WINDOW_SIZE / 64 + 1)

typedef struct {
    uint64_t top;                      //  highest counter accepted, 0: none
    uint64_t bits [SIM_WINDOW_WORDS];  //  bit (c % 2112): counter c seen
} sim_window_t;

//  Forget everything: the next counter of any value is new.
void sim_window_reset (sim_window_t *self);

//  True if COUNTER (> 0) was not seen and is not too old to tell.
bool sim_window_check (const sim_window_t *self, uint64_t counter);

//  Record COUNTER as seen. Call only after sim_window_check said true and
//  the datagram's tag verified.
void sim_window_mark (sim_window_t *self, uint64_t counter);

//  The 64 counters below the top as an ACK bitmap: bit i set if counter
//  top-1-i was seen (state-datagram.md, ACK body).
uint64_t sim_window_ack_bits (const sim_window_t *self);

//  Self test; returns 0 on success.
int sim_window_test (bool verbose);

#endif

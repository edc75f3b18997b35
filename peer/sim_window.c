/*  sim_window: anti-replay window. */

#include "peer/sim_window.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#define S_BITS (SIM_WINDOW_WORDS * 64)

void
sim_window_reset (sim_window_t *self)
{
    memset (self, 0, sizeof *self);
}

static bool
s_seen (const sim_window_t *self, uint64_t counter)
{
    uint64_t position = counter % S_BITS;
    return self->bits [position / 64] >> (position % 64) & 1;
}

bool
sim_window_check (const sim_window_t *self, uint64_t counter)
{
    if (counter == 0)
        return false;
    if (counter > self->top)
        return true;
    if (self->top - counter >= SIM_WINDOW_SIZE)
        return false;  //  too old to tell from a replay
    return !s_seen (self, counter);
}

void
sim_window_mark (sim_window_t *self, uint64_t counter)
{
    if (counter > self->top) {
        //  Clear the words the top moves through (RFC 6479 section 2):
        //  they held counters now too old to matter.
        uint64_t from = self->top / 64, to = counter / 64;
        if (to - from >= SIM_WINDOW_WORDS)
            memset (self->bits, 0, sizeof self->bits);
        else
            for (uint64_t word = from + 1; word <= to; word++)
                self->bits [word % SIM_WINDOW_WORDS] = 0;
        self->top = counter;
    }
    uint64_t position = counter % S_BITS;
    self->bits [position / 64] |= (uint64_t) 1 << (position % 64);
}

uint64_t
sim_window_ack_bits (const sim_window_t *self)
{
    uint64_t bits = 0;
    for (unsigned below = 1; below <= 64 && below < self->top; below++)
        if (s_seen (self, self->top - below))
            bits |= (uint64_t) 1 << (below - 1);
    return bits;
}

//  A model to check against: every counter seen, in a plain bitmap.
#define S_MODEL 40000

int
sim_window_test (bool verbose)
{
    if (verbose)
        printf (" * sim_window: ");
    sim_window_t window;
    sim_window_reset (&window);
    assert (!sim_window_check (&window, 0));
    assert (sim_window_check (&window, 1));
    sim_window_mark (&window, 1);
    assert (!sim_window_check (&window, 1));
    assert (sim_window_check (&window, 2));

    //  In order, then every one replayed
    for (uint64_t counter = 2; counter <= 5000; counter++) {
        assert (sim_window_check (&window, counter));
        sim_window_mark (&window, counter);
    }
    for (uint64_t counter = 1; counter <= 5000; counter++)
        assert (!sim_window_check (&window, counter));
    assert (sim_window_ack_bits (&window) == UINT64_MAX);

    //  Out of order inside the window: accepted once
    sim_window_reset (&window);
    sim_window_mark (&window, 3000);
    assert (sim_window_check (&window, 3000 - SIM_WINDOW_SIZE + 1));
    assert (!sim_window_check (&window, 3000 - SIM_WINDOW_SIZE));
    sim_window_mark (&window, 2999);
    sim_window_mark (&window, 2990);
    assert (!sim_window_check (&window, 2999));
    assert (sim_window_check (&window, 2998));
    assert (sim_window_ack_bits (&window) == (1u | 1u << 9));

    //  A jump past the whole window forgets everything below
    sim_window_mark (&window, 1000000);
    assert (!sim_window_check (&window, 2998));
    assert (sim_window_check (&window, 1000000 - 1));
    assert (sim_window_ack_bits (&window) == 0);

    //  Against a model, with a pseudo-random walk of counters
    static bool seen [S_MODEL];
    memset (seen, 0, sizeof seen);
    sim_window_reset (&window);
    uint64_t state = 12345, top = 0;
    for (unsigned step = 0; step < 200000; step++) {
        state = state * 6364136223846793005u + 1442695040888963407u;
        uint64_t jitter = (state >> 33) % 3000;
        uint64_t counter = top + 40 > jitter ? top + 40 - jitter : 1;
        if (counter >= S_MODEL)
            break;
        bool expect = !seen [counter] && top - counter < SIM_WINDOW_SIZE;
        if (counter > top)
            expect = true;
        assert (sim_window_check (&window, counter) == expect);
        if (expect) {
            sim_window_mark (&window, counter);
            seen [counter] = true;
            if (counter > top)
                top = counter;
        }
    }
    assert (window.top == top && top > 10000);
    if (verbose)
        printf ("OK\n");
    return 0;
}

/*  test_random: the deterministic randomness of the in-process simulations
    (xorshift64*), so that a failing seed replays exactly. Each file that
    includes it has a generator of its own. */

#ifndef TEST_RANDOM_H_INCLUDED
#define TEST_RANDOM_H_INCLUDED

#include <stdint.h>

static uint64_t test_random_state;

//  Start the sequence at SEED (any value but 0, which stays 0).
static inline void
test_random_seed (uint64_t seed)
{
    test_random_state = seed;
}

static inline uint64_t
test_random (void)
{
    test_random_state ^= test_random_state >> 12;
    test_random_state ^= test_random_state << 25;
    test_random_state ^= test_random_state >> 27;
    return test_random_state * 2685821657736338717ull;
}

//  A number in [0, BOUND).
static inline unsigned
test_random_below (unsigned bound)
{
    return (unsigned) (test_random () % bound);
}

#endif

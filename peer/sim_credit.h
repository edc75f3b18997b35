/*  sim_credit: the sending side of the state stream toward one peer
    (state-datagram.md, section 6): which entities are dirty for it, in the
    order they became dirty; which datagrams are in flight and what they
    carried; the credit the peer granted; and the retransmission timer.

    A pure core: the caller packs datagrams and sends them, feeds ACKs and
    the clock in, and asks what to send next. Entities are named by the
    store's (slot, generation), so a deleted entity is simply skipped.
    Memory is bounded by the number of entities plus the window, whatever
    the peer does: a dirty entity is queued once however often it changes
    (coalescing), and its newest state is read when it is packed. */

#ifndef SIM_CREDIT_H_INCLUDED
#define SIM_CREDIT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _sim_credit_t sim_credit_t;

//  Window before the first ACK, and the bounds of the retransmission
//  timeout (microseconds).
#define SIM_CREDIT_INITIAL_WINDOW 4
#define SIM_CREDIT_RTO_MIN_US 10000
#define SIM_CREDIT_RTO_MAX_US 1000000
#define SIM_CREDIT_RTO_INITIAL_US 100000

//  One entity state carried by a datagram.
typedef struct {
    uint32_t slot;        //  the entity's slot in the store
    uint32_t generation;  //  and its generation
    uint64_t epoch;       //  the epoch and seq sent
    uint64_t seq;
    bool grant;  //  the grant of that epoch went before it
} sim_credit_item_t;

//  What the core has counted since it was made.
typedef struct {
    uint64_t sent;           //  datagrams recorded as sent
    uint64_t acked;          //  datagrams acknowledged
    uint64_t lost;           //  datagrams declared lost (timeout)
    uint64_t requeued;       //  entity states due again after a loss
    uint64_t coalesced;      //  changes merged into an already dirty entity
    uint64_t credit_stalls;  //  times dirty entities waited for credit
    uint32_t in_flight;      //  datagrams neither acknowledged nor lost
    uint32_t window;         //  datagrams allowed in flight now
    uint32_t granted;        //  the peer's last grant (window's upper bound)
    uint32_t dirty;          //  entities waiting to be sent
    uint64_t srtt_us;        //  smoothed round trip, 0 before a sample
    uint64_t rto_us;         //  retransmission timeout now
} sim_credit_stats_t;

//  A new core allowing at most MAX_WINDOW datagrams in flight (1..65535,
//  whatever the peer grants). Returns NULL if out of memory.
sim_credit_t *sim_credit_new (uint32_t max_window);

//  Destroy the core and null the caller's pointer.
void sim_credit_destroy (sim_credit_t **self_p);

//  The entity in SLOT, GENERATION changed: make it due for this peer.
//  Returns 0, or -1 if out of memory.
int sim_credit_dirty (sim_credit_t *self, uint32_t slot, uint32_t generation);

//  True if a datagram may be sent now: something is due and the window is
//  not full. Counts a credit stall when something is due but the window
//  is full (once per stall).
bool sim_credit_open (sim_credit_t *self);

//  Take the entity due the longest into *SLOT, *GENERATION. Returns true,
//  or false if nothing is due.
bool sim_credit_take (sim_credit_t *self, uint32_t *slot, uint32_t *generation);

//  Give back an entity taken but not sent (it did not fit): it stays the
//  first due.
void sim_credit_untake (sim_credit_t *self, uint32_t slot, uint32_t generation);

//  Record datagram COUNTER, sent at NOW_US, carrying the COUNT ITEMS
//  (copied). Returns 0, or -1 if out of memory (the items are due again).
int sim_credit_sent (sim_credit_t *self, uint64_t counter, uint64_t now_us,
                     const sim_credit_item_t *items, size_t count);

//  An ACK from the peer: counter TOP and the 64 below it per BITS were
//  received; WINDOW is the credit granted. Returns the datagrams it newly
//  acknowledged.
size_t sim_credit_ack (sim_credit_t *self, uint64_t top, uint64_t bits,
                       uint32_t window, uint64_t now_us);

//  Declare lost every datagram in flight longer than the timeout at
//  NOW_US: its entities are due again and the window shrinks. Returns how
//  many were lost.
size_t sim_credit_expire (sim_credit_t *self, uint64_t now_us);

//  True unless the peer acknowledged a datagram that carried the grant of
//  EPOCH of the entity in SLOT, GENERATION (grants.md section 5): the
//  grant goes before the entity's update until then.
bool sim_credit_grant_due (sim_credit_t *self, uint32_t slot,
                           uint32_t generation, uint64_t epoch);

//  The entity in SLOT has another grant of the same epoch (its sim's key
//  changed): forget that the peer acknowledged the former one, so the new
//  one goes before its next update.
void sim_credit_grant_changed (sim_credit_t *self, uint32_t slot);

//  Forget everything in flight and every acknowledgement, of states and
//  of grants (the peer restarted or re-keyed): every entity ever sent
//  must be sent again, with its grant. Dirty entities stay due. The
//  caller re-marks the others dirty.
void sim_credit_reset (sim_credit_t *self);

//  Copy the counters into STATS.
void sim_credit_stats (sim_credit_t *self, sim_credit_stats_t *stats);

//  Self test; returns 0 on success.
int sim_credit_test (bool verbose);

#endif

/*  sim_credit: dirty entities, datagrams in flight and credit, per peer. */

#include "peer/sim_credit.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  What this peer has of one store slot.
typedef struct {
    uint32_t queued;           //  generation queued as due, 0: not queued
    uint32_t sent_generation;  //  generation of the last state sent
    uint64_t sent_epoch;       //  the last state sent
    uint64_t sent_seq;
    uint64_t acked_epoch;       //  the newest state acknowledged (of
    uint64_t acked_seq;         //  sent_generation)
    uint32_t grant_generation;  //  a grant acknowledged: of this generation
    uint64_t grant_epoch;       //  and this epoch, 0: none
} s_slot_t;

//  One datagram sent.
typedef struct {
    uint64_t counter;          //  its counter
    uint64_t sent_us;          //  when
    bool live;                 //  neither acknowledged nor lost yet
    sim_credit_item_t *items;  //  what it carried
    size_t count;              //  items used
    size_t capacity;           //  items allocated (reused)
} s_record_t;

struct _sim_credit_t {
    uint32_t max_window;     //  our own bound on the window
    uint32_t granted;        //  the peer's last grant
    uint32_t cap;            //  shrinks on loss, grows on ACKs
    bool stalled;            //  a stall is being counted
    s_slot_t *slots;         //  per store slot
    uint32_t slot_count;     //  length of slots
    uint32_t *queue;         //  due slots, a ring, oldest at head
    uint32_t queue_size;     //  capacity of the ring (power of 2)
    uint32_t queue_head;     //  index of the oldest
    uint32_t queue_length;   //  slots queued
    s_record_t *records;     //  datagrams sent, a ring in counter order
    uint32_t record_size;    //  capacity of the ring
    uint32_t record_head;    //  index of the oldest kept
    uint32_t record_length;  //  records kept (live or settled)
    uint64_t rttvar_us;      //  round-trip deviation
    sim_credit_stats_t stats;
};

sim_credit_t *
sim_credit_new (uint32_t max_window)
{
    assert (max_window >= 1 && max_window <= 65535);
    sim_credit_t *self = (sim_credit_t *) calloc (1, sizeof (sim_credit_t));
    if (!self)
        return NULL;
    self->max_window = max_window;
    self->granted = SIM_CREDIT_INITIAL_WINDOW;
    self->cap = SIM_CREDIT_INITIAL_WINDOW;
    //  Twice the window: settled records may sit behind an old live one
    //  until it expires; past that, the oldest is declared lost.
    self->record_size = 2 * max_window;
    self->records =
        (s_record_t *) calloc (self->record_size, sizeof (s_record_t));
    if (!self->records) {
        free (self);
        return NULL;
    }
    self->stats.rto_us = SIM_CREDIT_RTO_INITIAL_US;
    return self;
}

void
sim_credit_destroy (sim_credit_t **self_p)
{
    if (*self_p) {
        sim_credit_t *self = *self_p;
        for (uint32_t at = 0; at < self->record_size; at++)
            free (self->records [at].items);
        free (self->records);
        free (self->queue);
        free (self->slots);
        free (self);
        *self_p = NULL;
    }
}

static uint32_t
s_window (sim_credit_t *self)
{
    uint32_t window = self->granted < self->cap ? self->granted : self->cap;
    return window < self->max_window ? window : self->max_window;
}

//  Make SLOT addressable, and the queue able to hold every slot once.
static int
s_grow (sim_credit_t *self, uint32_t slot)
{
    if (slot < self->slot_count)
        return 0;
    uint32_t count = self->slot_count ? self->slot_count : 64;
    while (count <= slot)
        count *= 2;
    s_slot_t *slots =
        (s_slot_t *) realloc (self->slots, count * sizeof (s_slot_t));
    if (!slots)
        return -1;
    memset (slots + self->slot_count, 0,
            (count - self->slot_count) * sizeof (s_slot_t));
    self->slots = slots;
    self->slot_count = count;
    uint32_t *queue = (uint32_t *) malloc (count * sizeof (uint32_t));
    if (!queue)
        return -1;
    for (uint32_t at = 0; at < self->queue_length; at++)
        queue [at] =
            self->queue [(self->queue_head + at) & (self->queue_size - 1)];
    free (self->queue);
    self->queue = queue;
    self->queue_size = count;
    self->queue_head = 0;
    return 0;
}

static void
s_push_back (sim_credit_t *self, uint32_t slot)
{
    assert (self->queue_length < self->queue_size);
    self->queue [(self->queue_head + self->queue_length++)
                 & (self->queue_size - 1)] = slot;
}

static void
s_push_front (sim_credit_t *self, uint32_t slot)
{
    assert (self->queue_length < self->queue_size);
    self->queue_head = (self->queue_head - 1) & (self->queue_size - 1);
    self->queue [self->queue_head] = slot;
    self->queue_length++;
}

int
sim_credit_dirty (sim_credit_t *self, uint32_t slot, uint32_t generation)
{
    assert (generation > 0);
    if (s_grow (self, slot))
        return -1;
    s_slot_t *entry = &self->slots [slot];
    if (entry->queued == generation)
        self->stats.coalesced++;
    else if (entry->queued)
        entry->queued = generation;  //  the slot was reused: same place
    else {
        entry->queued = generation;
        s_push_back (self, slot);
    }
    return 0;
}

bool
sim_credit_open (sim_credit_t *self)
{
    if (self->queue_length == 0)
        return false;
    if (self->stats.in_flight < s_window (self)) {
        self->stalled = false;
        return true;
    }
    if (!self->stalled) {
        self->stalled = true;
        self->stats.credit_stalls++;
    }
    return false;
}

bool
sim_credit_take (sim_credit_t *self, uint32_t *slot, uint32_t *generation)
{
    if (self->queue_length == 0)
        return false;
    *slot = self->queue [self->queue_head];
    self->queue_head = (self->queue_head + 1) & (self->queue_size - 1);
    self->queue_length--;
    *generation = self->slots [*slot].queued;
    self->slots [*slot].queued = 0;
    return true;
}

void
sim_credit_untake (sim_credit_t *self, uint32_t slot, uint32_t generation)
{
    assert (slot < self->slot_count && !self->slots [slot].queued);
    self->slots [slot].queued = generation;
    s_push_front (self, slot);
}

//  Is state (EPOCH, SEQ) newer than (THAN_EPOCH, THAN_SEQ)?
static bool
s_newer (uint64_t epoch, uint64_t seq, uint64_t than_epoch, uint64_t than_seq)
{
    return epoch > than_epoch || (epoch == than_epoch && seq > than_seq);
}

//  RECORD will not be acknowledged: what it carried is due again, unless
//  a newer state of the entity went since or came through.
static void
s_lose (sim_credit_t *self, s_record_t *record)
{
    record->live = false;
    self->stats.in_flight--;
    self->stats.lost++;
    for (size_t at = 0; at < record->count; at++) {
        sim_credit_item_t *item = &record->items [at];
        s_slot_t *entry = &self->slots [item->slot];
        if (entry->sent_generation != item->generation
            || entry->sent_epoch != item->epoch || entry->sent_seq != item->seq
            || !s_newer (item->epoch, item->seq, entry->acked_epoch,
                         entry->acked_seq)
            || entry->queued)
            continue;
        entry->queued = item->generation;
        s_push_front (self, item->slot);
        self->stats.requeued++;
    }
}

//  Drop settled records from the head of the ring.
static void
s_trim (sim_credit_t *self)
{
    while (self->record_length && !self->records [self->record_head].live) {
        self->record_head = (self->record_head + 1) % self->record_size;
        self->record_length--;
    }
}

int
sim_credit_sent (sim_credit_t *self, uint64_t counter, uint64_t now_us,
                 const sim_credit_item_t *items, size_t count)
{
    s_trim (self);
    if (self->record_length == self->record_size) {
        //  The oldest has outlived its welcome behind newer ones.
        s_lose (self, &self->records [self->record_head]);
        s_trim (self);
    }
    s_record_t *record =
        &self->records [(self->record_head + self->record_length)
                        % self->record_size];
    assert (!record->live);
    if (count > record->capacity) {
        sim_credit_item_t *grown = (sim_credit_item_t *) realloc (
            record->items, count * sizeof (sim_credit_item_t));
        if (!grown) {
            for (size_t at = 0; at < count; at++)
                if (!self->slots [items [at].slot].queued) {
                    self->slots [items [at].slot].queued =
                        items [at].generation;
                    s_push_front (self, items [at].slot);
                }
            return -1;
        }
        record->items = grown;
        record->capacity = count;
    }
    memcpy (record->items, items, count * sizeof (sim_credit_item_t));
    record->count = count;
    record->counter = counter;
    record->sent_us = now_us;
    record->live = true;
    self->record_length++;
    self->stats.in_flight++;
    self->stats.sent++;
    for (size_t at = 0; at < count; at++) {
        s_slot_t *entry = &self->slots [items [at].slot];
        if (entry->sent_generation != items [at].generation) {
            entry->sent_generation = items [at].generation;
            entry->acked_epoch = entry->acked_seq = 0;
        }
        entry->sent_epoch = items [at].epoch;
        entry->sent_seq = items [at].seq;
    }
    return 0;
}

//  Index in the ring of the first record whose counter is >= COUNTER.
static uint32_t
s_find (sim_credit_t *self, uint64_t counter)
{
    uint32_t low = 0, high = self->record_length;
    while (low < high) {
        uint32_t middle = low + (high - low) / 2;
        if (self->records [(self->record_head + middle) % self->record_size]
                .counter
            < counter)
            low = middle + 1;
        else
            high = middle;
    }
    return low;
}

//  RFC 6298 section 2, with the timeout at twice the smoothed round trip
//  plus four deviations: the peer acknowledges after draining its socket,
//  not at once.
static void
s_sample (sim_credit_t *self, uint64_t rtt_us)
{
    sim_credit_stats_t *stats = &self->stats;
    if (stats->srtt_us == 0) {
        stats->srtt_us = rtt_us ? rtt_us : 1;
        self->rttvar_us = rtt_us / 2;
    }
    else {
        uint64_t delta = stats->srtt_us > rtt_us ? stats->srtt_us - rtt_us
                                                 : rtt_us - stats->srtt_us;
        self->rttvar_us = (3 * self->rttvar_us + delta) / 4;
        stats->srtt_us = (7 * stats->srtt_us + rtt_us) / 8;
    }
    uint64_t rto = 2 * stats->srtt_us + 4 * self->rttvar_us;
    stats->rto_us = rto < SIM_CREDIT_RTO_MIN_US   ? SIM_CREDIT_RTO_MIN_US
                    : rto > SIM_CREDIT_RTO_MAX_US ? SIM_CREDIT_RTO_MAX_US
                                                  : rto;
}

size_t
sim_credit_ack (sim_credit_t *self, uint64_t top, uint64_t bits,
                uint32_t window, uint64_t now_us)
{
    self->granted = window < self->max_window ? window : self->max_window;
    if (self->granted == 0)
        self->granted = 1;
    uint64_t low = top > 64 ? top - 64 : 1;
    size_t acked = 0;
    for (uint32_t at = s_find (self, low); at < self->record_length; at++) {
        s_record_t *record =
            &self->records [(self->record_head + at) % self->record_size];
        if (record->counter > top)
            break;
        bool received =
            record->counter == top || (bits >> (top - 1 - record->counter) & 1);
        if (!received || !record->live)
            continue;
        record->live = false;
        self->stats.in_flight--;
        self->stats.acked++;
        acked++;
        if (now_us >= record->sent_us)
            s_sample (self, now_us - record->sent_us);
        for (size_t item_at = 0; item_at < record->count; item_at++) {
            sim_credit_item_t *item = &record->items [item_at];
            s_slot_t *entry = &self->slots [item->slot];
            if (entry->sent_generation == item->generation
                && s_newer (item->epoch, item->seq, entry->acked_epoch,
                            entry->acked_seq)) {
                entry->acked_epoch = item->epoch;
                entry->acked_seq = item->seq;
            }
            if (item->grant
                && (entry->grant_generation != item->generation
                    || item->epoch > entry->grant_epoch)) {
                entry->grant_generation = item->generation;
                entry->grant_epoch = item->epoch;
            }
        }
    }
    self->cap += (uint32_t) acked;
    if (self->cap > self->max_window)
        self->cap = self->max_window;
    s_trim (self);
    return acked;
}

size_t
sim_credit_expire (sim_credit_t *self, uint64_t now_us)
{
    size_t lost = 0;
    for (uint32_t at = 0; at < self->record_length; at++) {
        s_record_t *record =
            &self->records [(self->record_head + at) % self->record_size];
        if (!record->live)
            continue;
        if (record->sent_us + self->stats.rto_us > now_us)
            break;  //  later ones were sent later
        s_lose (self, record);
        lost++;
    }
    if (lost) {
        //  Multiplicative decrease, and back off the timer (RFC 6298 5.5)
        uint32_t window = s_window (self);
        self->cap = window / 2 ? window / 2 : 1;
        self->stats.rto_us *= 2;
        if (self->stats.rto_us > SIM_CREDIT_RTO_MAX_US)
            self->stats.rto_us = SIM_CREDIT_RTO_MAX_US;
        s_trim (self);
    }
    return lost;
}

bool
sim_credit_grant_due (sim_credit_t *self, uint32_t slot, uint32_t generation,
                      uint64_t epoch)
{
    return slot >= self->slot_count
           || self->slots [slot].grant_generation != generation
           || self->slots [slot].grant_epoch != epoch;
}

void
sim_credit_grant_changed (sim_credit_t *self, uint32_t slot)
{
    if (slot < self->slot_count) {
        self->slots [slot].grant_generation = 0;
        self->slots [slot].grant_epoch = 0;
    }
}

void
sim_credit_reset (sim_credit_t *self)
{
    for (uint32_t at = 0; at < self->record_length; at++)
        self->records [(self->record_head + at) % self->record_size].live =
            false;
    self->record_length = 0;
    self->stats.in_flight = 0;
    for (uint32_t slot = 0; slot < self->slot_count; slot++) {
        s_slot_t *entry = &self->slots [slot];
        entry->sent_generation = 0;
        entry->sent_epoch = entry->sent_seq = 0;
        entry->acked_epoch = entry->acked_seq = 0;
        entry->grant_generation = 0;
        entry->grant_epoch = 0;
    }
    self->granted = self->cap = SIM_CREDIT_INITIAL_WINDOW;
    self->stats.srtt_us = 0;
    self->stats.rto_us = SIM_CREDIT_RTO_INITIAL_US;
}

void
sim_credit_stats (sim_credit_t *self, sim_credit_stats_t *stats)
{
    *stats = self->stats;
    stats->window = s_window (self);
    stats->granted = self->granted;
    stats->dirty = self->queue_length;
}

//  --------------------------------------------------------------------------
//  Self test: one sender, one receiver, a network that loses, delays,
//  reorders and duplicates, and a receiver that stops for a while.

#include "peer/sim_window.h"

#define S_ENTITIES 200
#define S_IN_TRANSIT 4096

typedef struct {
    uint64_t deliver_us;  //  when it arrives; 0: free
    bool ack;             //  an ACK, else a STATE datagram
    uint64_t counter;     //  STATE: its counter; ACK: the top
    uint64_t bits;        //  ACK: the bitmap
    size_t count;         //  STATE: updates carried
    sim_credit_item_t items [8];
} s_packet_t;

typedef struct {
    uint64_t random;
    s_packet_t packets [S_IN_TRANSIT];
} s_net_t;

static uint32_t
s_random (s_net_t *net, uint32_t below)
{
    net->random = net->random * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t) (net->random >> 33) % below;
}

//  Put a copy of PACKET on the network at NOW_US: 10% lost, 5% twice,
//  1 to 5 ms on the way (so reordered).
static void
s_transmit (s_net_t *net, const s_packet_t *packet, uint64_t now_us)
{
    if (s_random (net, 100) < 10)
        return;
    int copies = s_random (net, 100) < 5 ? 2 : 1;
    for (size_t at = 0; at < S_IN_TRANSIT && copies; at++)
        if (net->packets [at].deliver_us == 0) {
            net->packets [at] = *packet;
            net->packets [at].deliver_us = now_us + 1000 + s_random (net, 4000);
            copies--;
        }
}

int
sim_credit_test (bool verbose)
{
    int rc;
    if (verbose)
        printf (" * sim_credit: ");
    static s_net_t net;
    memset (&net, 0, sizeof net);
    net.random = 42;
    sim_credit_t *credit = sim_credit_new (32);
    uint64_t current [S_ENTITIES], replica [S_ENTITIES];
    for (uint32_t slot = 0; slot < S_ENTITIES; slot++) {
        current [slot] = 1;
        replica [slot] = 0;
        rc = sim_credit_dirty (credit, slot, 1);
        assert (rc == 0);
    }
    sim_window_t window;
    sim_window_reset (&window);
    uint64_t counter = 0, applied = 0, last_ack_us = 0;
    bool ack_due = false;
    sim_credit_stats_t stats;
    uint64_t now_us = 0;
    for (unsigned tick = 0; tick < 40000; tick++, now_us += 1000) {
        bool stopped = tick >= 2000 && tick < 3000;
        bool changing = tick < 5000;
        //  The game changes 20 entities a millisecond
        for (int change = 0; changing && change < 20; change++) {
            uint32_t slot = s_random (&net, S_ENTITIES);
            current [slot]++;
            rc = sim_credit_dirty (credit, slot, 1);
            assert (rc == 0);
        }
        //  Deliveries
        for (size_t at = 0; at < S_IN_TRANSIT; at++) {
            s_packet_t *packet = &net.packets [at];
            if (!packet->deliver_us || packet->deliver_us > now_us)
                continue;
            packet->deliver_us = 0;
            if (packet->ack)
                sim_credit_ack (credit, packet->counter, packet->bits, 16,
                                now_us);
            else if (!stopped && sim_window_check (&window, packet->counter)) {
                sim_window_mark (&window, packet->counter);
                for (size_t item = 0; item < packet->count; item++) {
                    sim_credit_item_t *update = &packet->items [item];
                    assert (update->seq <= current [update->slot]);
                    if (update->seq > replica [update->slot]) {
                        replica [update->slot] = update->seq;
                        applied++;
                    }
                }
                ack_due = true;
            }
        }
        //  The receiver acknowledges what it got, and every 250 ms anyway
        if (!stopped && (ack_due || now_us - last_ack_us >= 250000)
            && window.top) {
            s_packet_t ack = {
                0, true, window.top, sim_window_ack_bits (&window), 0, {{0}}};
            s_transmit (&net, &ack, now_us);
            ack_due = false;
            last_ack_us = now_us;
        }
        //  The sender sends while it has credit, 8 updates a datagram
        sim_credit_expire (credit, now_us);
        while (sim_credit_open (credit)) {
            s_packet_t packet = {0, false, ++counter, 0, 0, {{0}}};
            uint32_t slot, generation;
            while (packet.count < 8
                   && sim_credit_take (credit, &slot, &generation))
                packet.items [packet.count++] =
                    (sim_credit_item_t){slot, generation, 1, current [slot]};
            assert (packet.count > 0);
            rc = sim_credit_sent (credit, counter, now_us, packet.items,
                                  packet.count);
            assert (rc == 0);
            s_transmit (&net, &packet, now_us);
        }
        //  Memory stays bounded whatever the receiver does
        sim_credit_stats (credit, &stats);
        assert (stats.dirty <= S_ENTITIES);
        assert (stats.in_flight <= 32 && stats.window <= 32);
        if (tick == 2999)
            assert (stats.window <= 2);  //  backed off while stopped
        //  Once the game stops changing, the replica converges
        if (!changing && memcmp (current, replica, sizeof current) == 0)
            break;
    }
    assert (memcmp (current, replica, sizeof current) == 0);
    sim_credit_stats (credit, &stats);
    assert (stats.lost > 0 && stats.requeued > 0 && stats.coalesced > 0);
    assert (stats.credit_stalls > 0 && stats.acked > 0);
    assert (stats.srtt_us >= 1000 && stats.srtt_us <= 20000);
    if (verbose)
        printf ("(%llu datagrams, %llu lost, %llu coalesced) ",
                (unsigned long long) stats.sent,
                (unsigned long long) stats.lost,
                (unsigned long long) stats.coalesced);

    //  Untake puts an entity back first; reset forgets what is in flight
    uint32_t slot = 0, generation = 0;  //  set by sim_credit_take
    rc = sim_credit_dirty (credit, 7, 1);
    assert (rc == 0);
    rc = sim_credit_dirty (credit, 8, 1);
    assert (rc == 0);
    bool taken = sim_credit_take (credit, &slot, &generation);
    assert (taken && slot == 7);
    sim_credit_untake (credit, slot, generation);
    taken = sim_credit_take (credit, &slot, &generation);
    assert (taken && slot == 7);
    sim_credit_item_t item = {7, 1, 1, 99};
    rc = sim_credit_sent (credit, ++counter, now_us, &item, 1);
    assert (rc == 0);
    sim_credit_reset (credit);
    sim_credit_stats (credit, &stats);
    assert (stats.in_flight == 0 && stats.dirty == 1);
    //  A reused slot with a new generation takes the old one's place
    rc = sim_credit_dirty (credit, 8, 2);
    assert (rc == 0);
    taken = sim_credit_take (credit, &slot, &generation);
    assert (taken && slot == 8 && generation == 2);
    taken = sim_credit_take (credit, &slot, &generation);
    assert (!taken);

    //  Grants: due until a datagram carrying one is acknowledged, per
    //  epoch and generation; due again after a reset
    sim_credit_destroy (&credit);
    credit = sim_credit_new (8);
    counter = 0;
    assert (sim_credit_grant_due (credit, 3, 1, 5));
    rc = sim_credit_dirty (credit, 3, 1);  //  sent entities were dirty first
    assert (rc == 0);
    taken = sim_credit_take (credit, &slot, &generation);
    assert (taken && slot == 3);
    sim_credit_item_t with = {3, 1, 5, 1, true}, without = {3, 1, 5, 2, false};
    rc = sim_credit_sent (credit, ++counter, now_us, &with, 1);  //  lost
    assert (rc == 0);
    rc = sim_credit_sent (credit, ++counter, now_us, &without, 1);
    assert (rc == 0);
    sim_credit_ack (credit, 2, 0, 8, now_us);  //  only the one without
    assert (sim_credit_grant_due (credit, 3, 1, 5));
    rc = sim_credit_sent (credit, ++counter, now_us, &with, 1);
    assert (rc == 0);
    sim_credit_ack (credit, 3, 0, 8, now_us);
    assert (!sim_credit_grant_due (credit, 3, 1, 5));
    assert (sim_credit_grant_due (credit, 3, 1, 6));  //  a new epoch
    assert (sim_credit_grant_due (credit, 3, 2, 5));  //  a reused slot
    assert (sim_credit_grant_due (credit, 4, 1, 5));
    //  An older epoch's grant acknowledged late does not undo a newer
    sim_credit_item_t newer = {3, 1, 6, 1, true}, older = {3, 1, 5, 3, true};
    rc = sim_credit_sent (credit, ++counter, now_us, &older, 1);
    assert (rc == 0);
    rc = sim_credit_sent (credit, ++counter, now_us, &newer, 1);
    assert (rc == 0);
    sim_credit_ack (credit, 5, 1, 8, now_us);  //  5, and 4 by its bit
    assert (!sim_credit_grant_due (credit, 3, 1, 6));
    sim_credit_reset (credit);
    assert (sim_credit_grant_due (credit, 3, 1, 6));
    sim_credit_destroy (&credit);
    assert (!credit);
    if (verbose)
        printf ("OK\n");
    return 0;
}

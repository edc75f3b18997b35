/*  hs_kept: the changes a homeserver keeps for clients to resume from. */

#include "broker/hs_kept.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    hs_kept_change_t change;
    char *text;  //  op, topic and body, NUL-separated, one allocation
} s_slot_t;

struct _hs_kept_t {
    s_slot_t *slots;  //  [first, first + count) in use
    size_t first;
    size_t count;
    size_t capacity;
    size_t bytes;
    size_t max_count;
    size_t max_bytes;
    uint64_t dropped;  //  the newest change not kept
};

hs_kept_t *
hs_kept_new (size_t max_count, size_t max_bytes)
{
    hs_kept_t *self = (hs_kept_t *) calloc (1, sizeof (hs_kept_t));
    assert (self);
    self->max_count = max_count ? max_count : 1;
    self->max_bytes = max_bytes;
    return self;
}

void
hs_kept_destroy (hs_kept_t **self_p)
{
    if (*self_p) {
        hs_kept_t *self = *self_p;
        for (size_t at = 0; at < self->count; at++)
            free (self->slots [self->first + at].text);
        free (self->slots);
        free (self);
        *self_p = NULL;
    }
}

static void
s_drop_oldest (hs_kept_t *self)
{
    s_slot_t *oldest = &self->slots [self->first];
    self->dropped = oldest->change.index;
    self->bytes -= oldest->change.size;
    free (oldest->text);
    self->first++;
    self->count--;
}

void
hs_kept_add (hs_kept_t *self, uint64_t index, uint64_t prev, const char *op,
             const char *topic, const char *body)
{
    if (self->count
        && index <= self->slots [self->first + self->count - 1].change.index)
        return;
    //  The first change kept: the one before it (in the snapshot this
    //  member started from) is not.
    if (self->count == 0 && self->dropped < prev)
        self->dropped = prev;
    if (self->first + self->count == self->capacity) {
        if (self->first > self->capacity / 2) {
            memmove (self->slots, self->slots + self->first,
                     self->count * sizeof (s_slot_t));
            self->first = 0;
        }
        else {
            self->capacity = self->capacity ? self->capacity * 2 : 64;
            self->slots = (s_slot_t *) realloc (
                self->slots, self->capacity * sizeof (s_slot_t));
            assert (self->slots);
        }
    }
    size_t op_size = strlen (op) + 1, topic_size = strlen (topic) + 1;
    size_t body_size = strlen (body);
    s_slot_t *slot = &self->slots [self->first + self->count++];
    slot->text = (char *) malloc (op_size + topic_size + body_size + 1);
    assert (slot->text);
    memcpy (slot->text, op, op_size);
    memcpy (slot->text + op_size, topic, topic_size);
    memcpy (slot->text + op_size + topic_size, body, body_size + 1);
    slot->change = (hs_kept_change_t){
        .index = index,
        .prev = prev,
        .op = slot->text,
        .topic = slot->text + op_size,
        .body = slot->text + op_size + topic_size,
        .size = body_size,
    };
    self->bytes += body_size;
    while (self->count > 1
           && (self->count > self->max_count || self->bytes > self->max_bytes))
        s_drop_oldest (self);
}

uint64_t
hs_kept_dropped (hs_kept_t *self)
{
    return self->dropped;
}

size_t
hs_kept_count (hs_kept_t *self)
{
    return self->count;
}

size_t
hs_kept_bytes (hs_kept_t *self)
{
    return self->bytes;
}

const hs_kept_change_t *
hs_kept_at (hs_kept_t *self, size_t at)
{
    return at < self->count ? &self->slots [self->first + at].change : NULL;
}

size_t
hs_kept_after (hs_kept_t *self, uint64_t from)
{
    size_t low = 0, high = self->count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (self->slots [self->first + middle].change.index <= from)
            low = middle + 1;
        else
            high = middle;
    }
    return low;
}

int
hs_kept_test (bool verbose)
{
    if (verbose)
        printf (" * hs_kept: ");
    hs_kept_t *kept = hs_kept_new (5, 1 << 20);
    assert (hs_kept_count (kept) == 0 && hs_kept_dropped (kept) == 0);
    assert (hs_kept_after (kept, 0) == 0);
    //  A member that started from a snapshot whose last change was 7.
    uint64_t prev = 7;
    for (uint64_t index = 10; index < 30; index += 2) {
        char body [64];
        snprintf (body, sizeof body, "{\"index\":%llu}",
                  (unsigned long long) index);
        hs_kept_add (kept, index, prev, "entity.create", "entity:/a", body);
        prev = index;
        if (index == 10)
            assert (hs_kept_dropped (kept) == 7);
    }
    //  Ten added, the last five kept; the newest dropped is 18.
    assert (hs_kept_count (kept) == 5);
    assert (hs_kept_dropped (kept) == 18);
    assert (hs_kept_at (kept, 0)->index == 20);
    assert (hs_kept_at (kept, 4)->index == 28);
    assert (!hs_kept_at (kept, 5));
    assert (strcmp (hs_kept_at (kept, 0)->body, "{\"index\":20}") == 0);
    assert (strcmp (hs_kept_at (kept, 0)->op, "entity.create") == 0);
    assert (strcmp (hs_kept_at (kept, 0)->topic, "entity:/a") == 0);
    assert (hs_kept_at (kept, 1)->prev == 20);
    assert (hs_kept_after (kept, 0) == 0);
    assert (hs_kept_after (kept, 20) == 1);
    assert (hs_kept_after (kept, 21) == 1);
    assert (hs_kept_after (kept, 28) == 5);
    //  A replay changes nothing.
    hs_kept_add (kept, 24, 22, "entity.create", "entity:/a", "{}");
    assert (hs_kept_count (kept) == 5 && hs_kept_at (kept, 4)->index == 28);
    hs_kept_destroy (&kept);
    assert (!kept);

    //  By bytes: a large change pushes out the old, but the newest stays.
    kept = hs_kept_new (1000, 100);
    char big [200];
    memset (big, 'x', sizeof big - 1);
    big [sizeof big - 1] = '\0';
    hs_kept_add (kept, 1, 0, "op", "ring:", "{}");
    hs_kept_add (kept, 2, 1, "op", "ring:", big);
    assert (hs_kept_count (kept) == 1 && hs_kept_dropped (kept) == 1);
    assert (hs_kept_bytes (kept) == sizeof big - 1);
    //  Many, past the array's first size: it slides and grows.
    for (uint64_t index = 3; index < 3000; index++)
        hs_kept_add (kept, index, index - 1, "op", "ring:", "{}");
    assert (hs_kept_count (kept) == 50);
    assert (hs_kept_at (kept, 49)->index == 2999);
    assert (hs_kept_at (kept, 0)->index == 2950);
    assert (hs_kept_after (kept, 2950) == 1);
    hs_kept_destroy (&kept);
    if (verbose)
        printf ("OK\n");
    return 0;
}

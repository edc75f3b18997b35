/*  hs_kept: the changes a homeserver keeps, newest last, for clients to
    resume from: the HTTP change feed (http.md section 6) and the op
    events.read (`fabricctl watch`, operations.md section 4).

    Each change is kept as its event's body text (homeserver-events.md),
    at most MAX_COUNT changes and MAX_BYTES of text: the oldest go first.
    A member fills it as it applies, its log's replay after a restart
    included, so it holds every change since the snapshot it started
    from, up to its bounds. What is no longer kept is a gap, and says so. */

#ifndef HS_KEPT_H_INCLUDED
#define HS_KEPT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _hs_kept_t hs_kept_t;

//  Most bytes of changes a homeserver keeps, whatever their count: a
//  balancer's moves are large.
#define HS_KEPT_MAX_BYTES (64 * 1024 * 1024)

//  One change kept. Lent, valid until the next hs_kept_add.
typedef struct {
    uint64_t index;     //  its log index
    uint64_t prev;      //  the change before it (0: none)
    const char *op;     //  the operation that made it
    const char *topic;  //  "entity:/world/a", ... (homeserver-events.md)
    const char *body;   //  the event's JSON text, with its topic
    size_t size;        //  strlen (body)
} hs_kept_change_t;

hs_kept_t *hs_kept_new (size_t max_count, size_t max_bytes);

void hs_kept_destroy (hs_kept_t **self_p);

//  Keep the change at INDEX (PREV the one before it) that OP made on
//  TOPIC; BODY its event's text (all copied). Indexes only grow; a change
//  at or below the newest kept (a replay) is ignored.
void hs_kept_add (hs_kept_t *self, uint64_t index, uint64_t prev,
                  const char *op, const char *topic, const char *body);

//  The newest change not kept (dropped, or before the first kept), 0 if
//  none: a client resuming after an index below it has a gap.
uint64_t hs_kept_dropped (hs_kept_t *self);

//  How many changes are kept, and the text bytes they hold.
size_t hs_kept_count (hs_kept_t *self);
size_t hs_kept_bytes (hs_kept_t *self);

//  The AT-th kept change (0: the oldest), or NULL.
const hs_kept_change_t *hs_kept_at (hs_kept_t *self, size_t at);

//  The position of the first kept change whose index is above FROM
//  (hs_kept_count if none).
size_t hs_kept_after (hs_kept_t *self, uint64_t from);

//  Self test; returns 0 on success.
int hs_kept_test (bool verbose);

#endif

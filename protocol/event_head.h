/*  event_head: the head of a homeserver event's body
    (protocol/homeserver-events.md), {"index":I,"prev":P,"op":"OP", read
    without parsing the body, so a subscriber can skip what it does not
    act on. */

#ifndef EVENT_HEAD_H_INCLUDED
#define EVENT_HEAD_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EVENT_HEAD_MAX_OP 31

typedef struct {
    uint64_t index;  //  the change's log index, at least 1
    uint64_t prev;   //  the index of the change published before it
    char op [EVENT_HEAD_MAX_OP + 1];
} event_head_t;

//  Read the head of event body DATA of SIZE bytes into SELF. Returns true,
//  or false if DATA does not start with a well-formed head (then parse
//  the body instead).
bool event_head_read (event_head_t *self, const uint8_t *data, size_t size);

int event_head_test (bool verbose);

#endif

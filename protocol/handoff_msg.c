/*  handoff_msg: handoff channel codec. */

#include "protocol/handoff_msg.h"
#include "common/sf_name.h"
#include "protocol/grant_msg.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

static void
s_put (uint8_t *out, uint64_t value, int bytes)
{
    for (int at = bytes - 1; at >= 0; at--, value >>= 8)
        out [at] = (uint8_t) value;
}

static uint64_t
s_get (const uint8_t *in, int bytes)
{
    uint64_t value = 0;
    for (int at = 0; at < bytes; at++)
        value = value << 8 | in [at];
    return value;
}

static void
s_header (uint8_t *out, uint8_t type, uint64_t transfer)
{
    out [0] = 0x53, out [1] = 0x48, out [2] = HANDOFF_MSG_VERSION;
    out [3] = type;
    s_put (out + 4, transfer, 8);
}

size_t
handoff_msg_entity_size (const handoff_msg_entity_t *entity)
{
    return 2 + entity->path_size + 8 + 8 + 4 + entity->state_size;
}

static uint8_t *
s_put_entity (uint8_t *out, const handoff_msg_entity_t *entity)
{
    s_put (out, entity->path_size, 2);
    memcpy (out + 2, entity->path, entity->path_size);
    out += 2 + entity->path_size;
    s_put (out, entity->epoch, 8);
    s_put (out + 8, entity->seq, 8);
    s_put (out + 16, entity->state_size, 4);
    if (entity->state_size)
        memcpy (out + 20, entity->state, entity->state_size);
    return out + 20 + entity->state_size;
}

//  Read a path string at DATA[*AT..SIZE). Returns 0 or -1.
static int
s_get_path (const uint8_t *data, size_t size, size_t *at, const char **path,
            size_t *path_size)
{
    if (size - *at < 2)
        return -1;
    size_t length = (size_t) s_get (data + *at, 2);
    *at += 2;
    if (length > size - *at
        || !sf_name_path_valid ((const char *) data + *at, length))
        return -1;
    *path = (const char *) data + *at;
    *path_size = length;
    *at += length;
    return 0;
}

//  Read one entity at DATA[*AT..SIZE). Returns 0 or -1.
static int
s_get_entity (const uint8_t *data, size_t size, size_t *at,
              handoff_msg_entity_t *entity)
{
    if (s_get_path (data, size, at, &entity->path, &entity->path_size)
        || size - *at < 20)
        return -1;
    entity->epoch = s_get (data + *at, 8);
    entity->seq = s_get (data + *at + 8, 8);
    size_t length = (size_t) s_get (data + *at + 16, 4);
    *at += 20;
    if (length > HANDOFF_MSG_MAX_STATE || length > size - *at)
        return -1;
    entity->state = length ? data + *at : NULL;
    entity->state_size = length;
    *at += length;
    return 0;
}

//  Read the grant after a CHUNK entity at DATA[*AT..SIZE) into ENTITY:
//  none, or one that decodes and is for the entity's path and epoch.
//  Returns 0 or -1.
static int
s_get_grant (const uint8_t *data, size_t size, size_t *at,
             handoff_msg_entity_t *entity)
{
    if (size - *at < 2)
        return -1;
    size_t length = (size_t) s_get (data + *at, 2);
    *at += 2;
    if (length > size - *at)
        return -1;
    entity->grant = length ? data + *at : NULL;
    entity->grant_size = length;
    *at += length;
    if (length == 0)
        return 0;
    grant_msg_t grant;
    if (grant_msg_decode (&grant, entity->grant, length)
        || grant.epoch != entity->epoch
        || strlen (grant.path) != entity->path_size
        || memcmp (grant.path, entity->path, entity->path_size) != 0)
        return -1;
    return 0;
}

int
handoff_msg_decode (handoff_msg_t *self, const uint8_t *frame, size_t size)
{
    memset (self, 0, sizeof *self);
    if (size < HANDOFF_MSG_HEADER || size > HANDOFF_MSG_MAX_SIZE
        || frame [0] != 0x53 || frame [1] != 0x48
        || frame [2] != HANDOFF_MSG_VERSION)
        return -1;
    self->type = frame [3];
    self->transfer = s_get (frame + 4, 8);
    if (self->transfer == 0)
        return -1;
    size_t at = HANDOFF_MSG_HEADER;
    switch (self->type) {
        case HANDOFF_MSG_HANDOFF:
            if (s_get_entity (frame, size, &at, &self->entity))
                return -1;
            break;
        case HANDOFF_MSG_HANDOFF_ACK:
            if (size - at < 9)
                return -1;
            self->entity.epoch = s_get (frame + at, 8);
            self->status = frame [at + 8];
            at += 9;
            if (s_get_path (frame, size, &at, &self->entity.path,
                            &self->entity.path_size))
                return -1;
            break;
        case HANDOFF_MSG_CHUNK: {
            if (size - at < 7)
                return -1;
            self->chunk = (uint32_t) s_get (frame + at, 4);
            uint8_t flags = frame [at + 4];
            self->count = (uint16_t) s_get (frame + at + 5, 2);
            at += 7;
            if (self->chunk == 0 || flags > 1 || self->count == 0
                || self->count > HANDOFF_MSG_MAX_COUNT)
                return -1;
            self->last = flags & 1;
            self->entries = frame + at;
            self->entries_size = size - at;
            //  Check every entity now, so applying never meets a bad one.
            handoff_msg_entity_t entity;
            for (uint16_t index = 0; index < self->count; index++)
                if (s_get_entity (frame, size, &at, &entity)
                    || s_get_grant (frame, size, &at, &entity))
                    return -1;
            break;
        }
        case HANDOFF_MSG_CHUNK_ACK:
            if (size - at != 9)
                return -1;
            self->chunk = (uint32_t) s_get (frame + at, 4);
            self->credit = (uint32_t) s_get (frame + at + 4, 4);
            self->status = frame [at + 8];
            at += 9;
            break;
        default:
            return -1;
    }
    if (self->status > HANDOFF_MSG_MALFORMED)
        return -1;
    return at == size ? 0 : -1;
}

bool
handoff_msg_next (const handoff_msg_t *self, size_t *offset,
                  handoff_msg_entity_t *entity)
{
    if (*offset >= self->entries_size)
        return false;
    //  Checked whole by handoff_msg_decode: cannot fail here.
    int rc = s_get_entity (self->entries, self->entries_size, offset, entity);
    assert (rc == 0);
    rc = s_get_grant (self->entries, self->entries_size, offset, entity);
    assert (rc == 0);
    return true;
}

size_t
handoff_msg_encode_handoff (uint8_t *out, size_t capacity, uint64_t transfer,
                            const handoff_msg_entity_t *entity)
{
    size_t size = HANDOFF_MSG_HEADER + handoff_msg_entity_size (entity);
    if (size > capacity)
        return 0;
    s_header (out, HANDOFF_MSG_HANDOFF, transfer);
    s_put_entity (out + HANDOFF_MSG_HEADER, entity);
    return size;
}

size_t
handoff_msg_encode_handoff_ack (uint8_t *out, size_t capacity,
                                uint64_t transfer, uint64_t epoch,
                                uint8_t status, const char *path,
                                size_t path_size)
{
    size_t size = HANDOFF_MSG_HEADER + 9 + 2 + path_size;
    if (size > capacity)
        return 0;
    s_header (out, HANDOFF_MSG_HANDOFF_ACK, transfer);
    s_put (out + 12, epoch, 8);
    out [20] = status;
    s_put (out + 21, path_size, 2);
    memcpy (out + 23, path, path_size);
    return size;
}

int
handoff_msg_chunk_put (uint8_t *out, size_t capacity, size_t *used,
                       const handoff_msg_entity_t *entity)
{
    size_t grant_size = entity->grant ? entity->grant_size : 0;
    size_t size = handoff_msg_entity_size (entity) + 2 + grant_size;
    if (*used > capacity || size > capacity - *used || grant_size > 65535)
        return -1;
    uint8_t *at = s_put_entity (out + *used, entity);
    s_put (at, grant_size, 2);
    if (grant_size)
        memcpy (at + 2, entity->grant, grant_size);
    *used += size;
    return 0;
}

size_t
handoff_msg_chunk_finish (uint8_t *out, size_t used, uint64_t transfer,
                          uint32_t chunk, bool last, uint16_t count)
{
    s_header (out, HANDOFF_MSG_CHUNK, transfer);
    s_put (out + 12, chunk, 4);
    out [16] = last ? 1 : 0;
    s_put (out + 17, count, 2);
    return used;
}

size_t
handoff_msg_encode_chunk_ack (uint8_t *out, uint64_t transfer, uint32_t chunk,
                              uint32_t credit, uint8_t status)
{
    s_header (out, HANDOFF_MSG_CHUNK_ACK, transfer);
    s_put (out + 12, chunk, 4);
    s_put (out + 16, credit, 4);
    out [20] = status;
    return 21;
}

int
handoff_msg_test (bool verbose)
{
    int rc;
    if (verbose)
        printf (" * handoff_msg: ");
    uint8_t frame [4096];
    handoff_msg_t msg;

    //  HANDOFF round trip; every truncation and any extra byte refused
    handoff_msg_entity_t entity = {
        "/world/a", 8, 3, 17, (const uint8_t *) "final", 5, NULL, 0};
    size_t size = handoff_msg_encode_handoff (frame, sizeof frame, 9, &entity);
    assert (size == 12 + 2 + 8 + 20 + 5);
    rc = handoff_msg_decode (&msg, frame, size);
    assert (rc == 0);
    assert (msg.type == HANDOFF_MSG_HANDOFF && msg.transfer == 9);
    assert (msg.entity.epoch == 3 && msg.entity.seq == 17);
    assert (msg.entity.state_size == 5
            && memcmp (msg.entity.state, "final", 5) == 0);
    for (size_t cut = 0; cut < size; cut++) {
        rc = handoff_msg_decode (&msg, frame, cut);
        assert (rc == -1);
    }
    rc = handoff_msg_decode (&msg, frame, size + 1);
    assert (rc == -1);
    size_t encoded = handoff_msg_encode_handoff (frame, size - 1, 9, &entity);
    assert (encoded == 0);

    //  HANDOFF_ACK
    size = handoff_msg_encode_handoff_ack (frame, sizeof frame, 9, 3,
                                           HANDOFF_MSG_REFUSED, "/world/a", 8);
    rc = handoff_msg_decode (&msg, frame, size);
    assert (rc == 0);
    assert (msg.type == HANDOFF_MSG_HANDOFF_ACK
            && msg.status == HANDOFF_MSG_REFUSED);
    assert (msg.entity.epoch == 3 && msg.entity.path_size == 8);
    frame [20] = 9;  //  unknown status
    rc = handoff_msg_decode (&msg, frame, size);
    assert (rc == -1);

    //  CHUNK: built, checked whole, walked
    size_t used = HANDOFF_MSG_CHUNK_HEADER;
    char path [32];
    uint16_t count = 0;
    while (true) {
        snprintf (path, sizeof path, "/world/e%u", count);
        handoff_msg_entity_t item = {
            path, strlen (path), 1, count + 1u, (const uint8_t *) "state",
            5,    NULL,          0};
        if (handoff_msg_chunk_put (frame, 1000, &used, &item))
            break;
        count++;
    }
    assert (count > 10);
    size = handoff_msg_chunk_finish (frame, used, 9, 1, true, count);
    rc = handoff_msg_decode (&msg, frame, size);
    assert (rc == 0);
    assert (msg.type == HANDOFF_MSG_CHUNK && msg.chunk == 1 && msg.last);
    assert (msg.count == count);
    size_t offset = 0;
    uint16_t seen = 0;
    handoff_msg_entity_t item;
    while (handoff_msg_next (&msg, &offset, &item)) {
        snprintf (path, sizeof path, "/world/e%u", seen);
        assert (item.path_size == strlen (path)
                && memcmp (item.path, path, item.path_size) == 0);
        assert (item.seq == seen + 1u);
        seen++;
    }
    assert (seen == count);
    for (size_t cut = 0; cut < size; cut++) {
        rc = handoff_msg_decode (&msg, frame, cut);
        assert (rc == -1);
    }
    handoff_msg_chunk_finish (frame, used, 9, 1, true, (uint16_t) (count + 1));
    rc = handoff_msg_decode (&msg, frame, size);
    assert (rc == -1);  //  count lies
    handoff_msg_chunk_finish (frame, used, 9, 0, true, count);
    rc = handoff_msg_decode (&msg, frame, size);
    assert (rc == -1);  //  chunk 0

    //  CHUNK entities with grants: for their own path and epoch only
    grant_msg_t grant = {.path = "/world/g",
                         .epoch = 4,
                         .sim = "sim1",
                         .transfer = 2,
                         .key_id = 1,
                         .leaves = 1};
    uint8_t grant_bytes [GRANT_MSG_MAX_SIZE];
    size_t grant_size =
        grant_msg_encode (&grant, grant_bytes, sizeof grant_bytes);
    assert (grant_size > 0);
    handoff_msg_entity_t granted = {"/world/g", 8, 4,           1,
                                    NULL,       0, grant_bytes, grant_size};
    used = HANDOFF_MSG_CHUNK_HEADER;
    rc = handoff_msg_chunk_put (frame, sizeof frame, &used, &granted);
    assert (rc == 0);
    size_t first = used;
    handoff_msg_entity_t bare = {"/world/h", 8, 1, 1, NULL, 0, NULL, 0};
    rc = handoff_msg_chunk_put (frame, sizeof frame, &used, &bare);
    assert (rc == 0);
    size = handoff_msg_chunk_finish (frame, used, 9, 2, false, 2);
    rc = handoff_msg_decode (&msg, frame, size);
    assert (rc == 0);
    offset = 0;
    bool next = handoff_msg_next (&msg, &offset, &item);
    assert (next && item.grant_size == grant_size && item.epoch == 4);
    assert (memcmp (item.grant, grant_bytes, grant_size) == 0);
    next = handoff_msg_next (&msg, &offset, &item);
    assert (next && !item.grant && item.grant_size == 0);
    next = handoff_msg_next (&msg, &offset, &item);
    assert (!next);
    for (size_t cut = 0; cut < size; cut++) {
        rc = handoff_msg_decode (&msg, frame, cut);
        assert (rc == -1);
    }
    //  The grant of another epoch, of another path, or one that does not
    //  decode makes the chunk malformed
    granted.epoch = 5;
    used = HANDOFF_MSG_CHUNK_HEADER;
    rc = handoff_msg_chunk_put (frame, sizeof frame, &used, &granted);
    assert (rc == 0 && used == first);
    size = handoff_msg_chunk_finish (frame, used, 9, 2, false, 1);
    rc = handoff_msg_decode (&msg, frame, size);
    assert (rc == -1);
    granted.epoch = 4;
    granted.path = "/world/f";
    used = HANDOFF_MSG_CHUNK_HEADER;
    rc = handoff_msg_chunk_put (frame, sizeof frame, &used, &granted);
    assert (rc == 0);
    size = handoff_msg_chunk_finish (frame, used, 9, 2, false, 1);
    rc = handoff_msg_decode (&msg, frame, size);
    assert (rc == -1);
    granted.path = "/world/g";
    used = HANDOFF_MSG_CHUNK_HEADER;
    rc = handoff_msg_chunk_put (frame, sizeof frame, &used, &granted);
    assert (rc == 0);
    size = handoff_msg_chunk_finish (frame, used, 9, 2, false, 1);
    rc = handoff_msg_decode (&msg, frame, size);
    assert (rc == 0);
    frame [size - grant_size] = 'X';  //  its magic
    rc = handoff_msg_decode (&msg, frame, size);
    assert (rc == -1);

    //  CHUNK_ACK
    size = handoff_msg_encode_chunk_ack (frame, 9, 4, 8, HANDOFF_MSG_OK);
    rc = handoff_msg_decode (&msg, frame, size);
    assert (rc == 0);
    assert (msg.chunk == 4 && msg.credit == 8 && msg.status == 0);
    rc = handoff_msg_decode (&msg, frame, size - 1);
    assert (rc == -1);
    frame [3] = 5;  //  unknown type
    rc = handoff_msg_decode (&msg, frame, size);
    assert (rc == -1);
    if (verbose)
        printf ("OK\n");
    return 0;
}

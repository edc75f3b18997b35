/*  state_msg: state datagram codec. */

#include "protocol/state_msg.h"
#include "common/sf_name.h"
#include "protocol/grant_msg.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

static const uint8_t s_magic [2] = {0x53, 0x44};  //  "SD"

static void
s_put_u64 (uint8_t *out, uint64_t value)
{
    for (int at = 7; at >= 0; at--, value >>= 8)
        out [at] = (uint8_t) value;
}

static uint64_t
s_get_u64 (const uint8_t *in)
{
    uint64_t value = 0;
    for (int at = 0; at < 8; at++)
        value = value << 8 | in [at];
    return value;
}

void
state_msg_header_encode (const state_msg_header_t *header, uint8_t *out)
{
    memcpy (out, s_magic, 2);
    out [2] = STATE_MSG_VERSION;
    out [3] = header->kind;
    memcpy (out + 4, header->sender, STATE_MSG_KEY_ID);
    memcpy (out + 12, header->receiver, STATE_MSG_KEY_ID);
    s_put_u64 (out + 20, header->session);
    s_put_u64 (out + 28, header->counter);
}

int
state_msg_header_decode (state_msg_header_t *header, const uint8_t *data,
                         size_t size)
{
    if (size < STATE_MSG_OVERHEAD + 1 || size > STATE_MSG_MAX_SIZE)
        return -1;
    if (memcmp (data, s_magic, 2) != 0 || data [2] != STATE_MSG_VERSION)
        return -1;
    header->kind = data [3];
    if (header->kind != STATE_MSG_STATE && header->kind != STATE_MSG_ACK)
        return -1;
    if (header->kind == STATE_MSG_ACK
        && size != STATE_MSG_OVERHEAD + STATE_MSG_ACK_BODY)
        return -1;
    memcpy (header->sender, data + 4, STATE_MSG_KEY_ID);
    memcpy (header->receiver, data + 12, STATE_MSG_KEY_ID);
    header->session = s_get_u64 (data + 20);
    header->counter = s_get_u64 (data + 28);
    if (header->session == 0 || header->counter == 0)
        return -1;
    return 0;
}

//  --------------------------------------------------------------------------
//  LEB128 varints

static size_t
s_varint_size (uint64_t value)
{
    size_t size = 1;
    while (value >= 0x80)
        value >>= 7, size++;
    return size;
}

static uint8_t *
s_varint_put (uint8_t *out, uint64_t value)
{
    while (value >= 0x80) {
        *out++ = (uint8_t) (value | 0x80);
        value >>= 7;
    }
    *out++ = (uint8_t) value;
    return out;
}

//  Read a varint at BODY[*OFFSET..SIZE). Returns 0, or -1 if truncated,
//  longer than 64 bits, or not in its shortest form.
static int
s_varint_get (const uint8_t *body, size_t size, size_t *offset, uint64_t *value)
{
    if (*offset < size && body [*offset] < 0x80) {
        *value = body [(*offset)++];  //  most are one byte
        return 0;
    }
    uint64_t result = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*offset >= size)
            return -1;
        uint8_t byte = body [(*offset)++];
        uint64_t bits = byte & 0x7f;
        if (shift == 63 && bits > 1)
            return -1;  //  over 64 bits
        result |= bits << shift;
        if (!(byte & 0x80)) {
            if (byte == 0 && shift > 0)
                return -1;  //  a longer form than needed
            *value = result;
            return 0;
        }
    }
    return -1;
}

//  --------------------------------------------------------------------------
//  STATE body

size_t
state_msg_update_size (size_t path_size, uint64_t epoch, uint64_t seq,
                       size_t state_size)
{
    return 1 + s_varint_size (path_size) + path_size + s_varint_size (epoch)
           + s_varint_size (seq) + s_varint_size (state_size) + state_size;
}

int
state_msg_update_put (const state_msg_update_t *update, uint8_t *body,
                      size_t capacity, size_t *used)
{
    size_t grant_size = update->grant ? 1 + update->grant_size : 0;
    size_t size = grant_size
                  + state_msg_update_size (update->path_size, update->epoch,
                                           update->seq, update->state_size);
    if (*used > capacity || size > capacity - *used)
        return -1;
    uint8_t *out = body + *used;
    if (update->grant) {
        *out++ = STATE_MSG_RECORD_GRANT;
        memcpy (out, update->grant, update->grant_size);
        out += update->grant_size;
    }
    *out++ = STATE_MSG_RECORD_UPDATE;
    out = s_varint_put (out, update->path_size);
    memcpy (out, update->path, update->path_size);
    out += update->path_size;
    out = s_varint_put (out, update->epoch);
    out = s_varint_put (out, update->seq);
    out = s_varint_put (out, update->state_size);
    if (update->state_size)
        memcpy (out, update->state, update->state_size);
    *used += size;
    return 0;
}

int
state_msg_update_next (const uint8_t *body, size_t size, size_t *offset,
                       state_msg_update_t *update)
{
    if (*offset == size)
        return 0;
    size_t at = *offset;
    update->grant = NULL;
    update->grant_size = 0;
    if (body [at] == STATE_MSG_RECORD_GRANT) {
        at++;
        size_t grant_size = grant_msg_measure (body + at, size - at);
        if (grant_size == 0)
            return -1;
        update->grant = body + at;
        update->grant_size = grant_size;
        at += grant_size;
        if (at == size)
            return -1;  //  a grant must precede an update
    }
    if (body [at++] != STATE_MSG_RECORD_UPDATE)
        return -1;
    uint64_t path_size, state_size;
    if (s_varint_get (body, size, &at, &path_size) || path_size == 0
        || path_size > SF_NAME_MAX_PATH || path_size > size - at)
        return -1;
    update->path = (const char *) body + at;
    update->path_size = (size_t) path_size;
    at += path_size;
    if (!sf_name_path_valid (update->path, update->path_size))
        return -1;
    if (s_varint_get (body, size, &at, &update->epoch) || update->epoch == 0
        || s_varint_get (body, size, &at, &update->seq) || update->seq == 0
        || s_varint_get (body, size, &at, &state_size)
        || state_size > size - at)
        return -1;
    update->state = state_size ? body + at : NULL;
    update->state_size = (size_t) state_size;
    if (update->grant) {
        //  Strict: the grant decodes, and proves this update's (path,
        //  epoch), not another's.
        grant_msg_t grant;
        if (grant_msg_decode (&grant, update->grant, update->grant_size)
            || grant.epoch != update->epoch
            || strlen (grant.path) != update->path_size
            || memcmp (grant.path, update->path, update->path_size) != 0)
            return -1;
    }
    *offset = at + (size_t) state_size;
    return 1;
}

int
state_msg_body_decode (const uint8_t *body, size_t size,
                       state_msg_update_t *updates, size_t capacity)
{
    size_t offset = 0, count = 0;
    int rc = 0;
    while (
        count < capacity
        && (rc = state_msg_update_next (body, size, &offset, &updates [count]))
               == 1)
        count++;
    if (rc == -1 || count == 0 || offset != size)
        return -1;
    return (int) count;
}

//  --------------------------------------------------------------------------
//  ACK body

void
state_msg_ack_encode (const state_msg_ack_t *ack, uint8_t *out)
{
    s_put_u64 (out, ack->session);
    s_put_u64 (out + 8, ack->top);
    s_put_u64 (out + 16, ack->bits);
    out [24] = (uint8_t) (ack->window >> 24);
    out [25] = (uint8_t) (ack->window >> 16);
    out [26] = (uint8_t) (ack->window >> 8);
    out [27] = (uint8_t) ack->window;
}

int
state_msg_ack_decode (state_msg_ack_t *ack, const uint8_t *body, size_t size)
{
    if (size != STATE_MSG_ACK_BODY)
        return -1;
    ack->session = s_get_u64 (body);
    ack->top = s_get_u64 (body + 8);
    ack->bits = s_get_u64 (body + 16);
    ack->window = (uint32_t) body [24] << 24 | (uint32_t) body [25] << 16
                  | (uint32_t) body [26] << 8 | body [27];
    if (ack->session == 0 || ack->window == 0 || ack->window > 65535)
        return -1;
    return 0;
}

//  --------------------------------------------------------------------------
//  Self test

//  How many updates BODY decodes to, or -1.
static int
s_decodes (const uint8_t *body, size_t size)
{
    static state_msg_update_t updates [STATE_MSG_MAX_UPDATES];
    return state_msg_body_decode (body, size, updates, STATE_MSG_MAX_UPDATES);
}

int
state_msg_test (bool verbose)
{
    int rc;
    if (verbose)
        printf (" * state_msg: ");

    //  Header round trip, and every truncation refused
    uint8_t datagram [STATE_MSG_MAX_SIZE + 1];
    memset (datagram, 0xa5, sizeof datagram);
    state_msg_header_t header = {STATE_MSG_STATE,
                                 {1, 2, 3, 4, 5, 6, 7, 8},
                                 {9, 8, 7, 6, 5, 4, 3, 2},
                                 0x0102030405060708u,
                                 42};
    state_msg_header_encode (&header, datagram);
    assert (datagram [0] == 'S' && datagram [1] == 'D');
    assert (datagram [35] == 42);
    state_msg_header_t decoded;
    rc = state_msg_header_decode (&decoded, datagram, 100);
    assert (rc == 0);
    assert (decoded.kind == STATE_MSG_STATE);
    assert (decoded.session == header.session && decoded.counter == 42);
    assert (memcmp (decoded.receiver, header.receiver, 8) == 0);
    for (size_t size = 0; size <= STATE_MSG_OVERHEAD; size++) {
        rc = state_msg_header_decode (&decoded, datagram, size);
        assert (rc == -1);
    }
    rc = state_msg_header_decode (&decoded, datagram, STATE_MSG_MAX_SIZE);
    assert (rc == 0);
    rc = state_msg_header_decode (&decoded, datagram, STATE_MSG_MAX_SIZE + 1);
    assert (rc == -1);
    datagram [2] = 1;  //  draft 1, whose bodies had no record types
    rc = state_msg_header_decode (&decoded, datagram, 100);
    assert (rc == -1);
    datagram [2] = 3;  //  unknown version
    rc = state_msg_header_decode (&decoded, datagram, 100);
    assert (rc == -1);
    datagram [2] = STATE_MSG_VERSION;
    datagram [3] = 3;  //  unknown kind
    rc = state_msg_header_decode (&decoded, datagram, 100);
    assert (rc == -1);
    datagram [3] = STATE_MSG_ACK;  //  an ACK has one size only
    rc = state_msg_header_decode (&decoded, datagram, 100);
    assert (rc == -1);
    rc = state_msg_header_decode (&decoded, datagram,
                                  STATE_MSG_OVERHEAD + STATE_MSG_ACK_BODY);
    assert (rc == 0);
    header.counter = 0;  //  counters start at 1
    state_msg_header_encode (&header, datagram);
    rc = state_msg_header_decode (&decoded, datagram, 100);
    assert (rc == -1);

    //  Body: pack until full, read back in order
    uint8_t body [1200 - STATE_MSG_OVERHEAD];
    size_t used = 0;
    uint8_t state [64];
    memset (state, 7, sizeof state);
    char path [32];
    unsigned packed = 0;
    while (true) {
        snprintf (path, sizeof path, "/world/room1/cube%03u", packed);
        state_msg_update_t update = {path,  strlen (path), 3, 1000 + packed,
                                     state, sizeof state};
        if (state_msg_update_put (&update, body, sizeof body, &used))
            break;
        packed++;
    }
    //  The spec's arithmetic: 64-byte states, 20-byte paths, 12 per datagram
    assert (packed == 12);
    rc = s_decodes (body, used);
    assert (rc == (int) packed);
    size_t offset = 0;
    state_msg_update_t update;
    for (unsigned index = 0; index < packed; index++) {
        rc = state_msg_update_next (body, used, &offset, &update);
        assert (rc == 1);
        snprintf (path, sizeof path, "/world/room1/cube%03u", index);
        assert (update.path_size == strlen (path));
        assert (memcmp (update.path, path, update.path_size) == 0);
        assert (update.epoch == 3 && update.seq == 1000 + index);
        assert (update.state_size == 64 && update.state [63] == 7);
    }
    rc = state_msg_update_next (body, used, &offset, &update);
    assert (rc == 0);
    //  Decoding the whole body reads the same, in order
    state_msg_update_t all [12];
    rc = state_msg_body_decode (body, used, all, 12);
    assert (rc == 12);
    size_t checked = 0;
    for (unsigned index = 0; index < packed; index++) {
        rc = state_msg_update_next (body, used, &checked, &update);
        assert (rc == 1);
        assert (all [index].seq == update.seq
                && all [index].path == update.path);
        assert (all [index].state == update.state);
        assert (all [index].epoch == update.epoch
                && all [index].state_size == update.state_size);
    }
    //  A body with more updates than room is refused, not cut short
    rc = state_msg_body_decode (body, used, all, 11);
    assert (rc == -1);

    //  Every truncation of a valid body but the ends of updates is refused
    size_t update_size = state_msg_update_size (20, 3, 1000, 64);
    for (size_t size = 0; size < used; size++) {
        rc = s_decodes (body, size);
        assert ((rc > 0) == (size > 0 && size % update_size == 0));
    }
    rc = s_decodes (body, 0);
    assert (rc == -1);

    //  Zero epoch, zero seq, bad path, non-minimal varint
    uint8_t small [64];
    used = 0;
    state_msg_update_t zero = {"/a", 2, 0, 1, NULL, 0};
    rc = state_msg_update_put (&zero, small, sizeof small, &used);
    assert (rc == 0);
    rc = s_decodes (small, used);
    assert (rc == -1);
    used = 0;
    zero.epoch = 1, zero.seq = 0;
    rc = state_msg_update_put (&zero, small, sizeof small, &used);
    assert (rc == 0);
    rc = s_decodes (small, used);
    assert (rc == -1);
    used = 0;
    state_msg_update_t bad_path = {"a/", 2, 1, 1, NULL, 0};
    rc = state_msg_update_put (&bad_path, small, sizeof small, &used);
    assert (rc == 0);
    rc = s_decodes (small, used);
    assert (rc == -1);
    const uint8_t long_form [] = {0x01, 0x82, 0x00, '/', 'a', 1, 1, 0};
    rc = s_decodes (long_form, sizeof long_form);
    assert (rc == -1);
    const uint8_t short_form [] = {0x01, 0x02, '/', 'a', 1, 1, 0};
    rc = s_decodes (short_form, sizeof short_form);
    assert (rc == 1);
    //  The smallest updates fill a largest body: STATE_MSG_MAX_UPDATES
    static uint8_t full [STATE_MSG_MAX_SIZE - STATE_MSG_OVERHEAD];
    size_t filled = 0;
    while (filled + sizeof short_form <= sizeof full) {
        memcpy (full + filled, short_form, sizeof short_form);
        filled += sizeof short_form;
    }
    rc = s_decodes (full, filled);
    assert (rc == STATE_MSG_MAX_UPDATES);
    const uint8_t huge [] = {0x01, 0x02, '/',  'a',  0xff, 0xff, 0xff, 0xff,
                             0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 1,    0};
    rc = s_decodes (huge, sizeof huge);
    assert (rc == -1);
    const uint8_t max [] = {0x01, 0x02, '/',  'a',  0xff, 0xff, 0xff, 0xff,
                            0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1,    0};
    offset = 0;
    rc = state_msg_update_next (max, sizeof max, &offset, &update);
    assert (rc == 1);
    assert (update.epoch == UINT64_MAX);
    uint8_t unknown [sizeof short_form];
    memcpy (unknown, short_form, sizeof short_form);
    for (unsigned type = 0; type < 256; type++) {
        unknown [0] = (uint8_t) type;
        rc = s_decodes (unknown, sizeof unknown);
        assert ((rc == 1) == (type == STATE_MSG_RECORD_UPDATE));
    }

    //  Grant records: round trip, before their update only
    grant_msg_t grant = {.path = "/world/a",
                         .epoch = 7,
                         .sim = "sim1",
                         .transfer = 3,
                         .key_id = 1,
                         .leaves = 1};
    memset (grant.key, 0x11, sizeof grant.key);
    memset (grant.signature, 0x22, sizeof grant.signature);
    uint8_t grant_bytes [GRANT_MSG_MAX_SIZE];
    size_t grant_size =
        grant_msg_encode (&grant, grant_bytes, sizeof grant_bytes);
    assert (grant_size == GRANT_MSG_FIXED + 8 + 4);
    state_msg_update_t granted = {"/world/a", 8, 7,           2,
                                  state,      4, grant_bytes, grant_size};
    state_msg_update_t bare = {"/world/b", 8, 9, 1, NULL, 0, NULL, 0};
    uint8_t two [600];
    used = 0;
    rc = state_msg_update_put (&granted, two, sizeof two, &used);
    assert (rc == 0);
    size_t first = used;
    assert (first == 1 + grant_size + state_msg_update_size (8, 7, 2, 4));
    assert (two [0] == STATE_MSG_RECORD_GRANT && two [1] == 'S');
    rc = state_msg_update_put (&bare, two, sizeof two, &used);
    assert (rc == 0);
    rc = state_msg_body_decode (two, used, all, 12);
    assert (rc == 2);
    assert (all [0].grant == two + 1 && all [0].grant_size == grant_size);
    assert (all [0].epoch == 7 && all [0].seq == 2 && all [0].state_size == 4);
    assert (!all [1].grant && all [1].grant_size == 0 && all [1].epoch == 9);
    //  Every truncation but the ends of entries is refused
    for (size_t size = 0; size < used; size++) {
        rc = s_decodes (two, size);
        assert ((rc > 0) == (size == first));
    }
    //  A grant and nothing, or a grant before a grant, is refused
    uint8_t bad [600];
    used = 0;
    state_msg_update_t lone = granted;
    rc = state_msg_update_put (&lone, bad, sizeof bad, &used);
    assert (rc == 0);
    memmove (bad + 1 + grant_size, bad, used);  //  grant grant update
    rc = s_decodes (bad, used + 1 + grant_size);
    assert (rc == -1);
    rc = s_decodes (bad, 1 + grant_size);
    assert (rc == -1);
    //  A grant for another epoch, or another path, than its update's
    state_msg_update_t other = granted;
    other.epoch = 8;
    used = 0;
    rc = state_msg_update_put (&other, bad, sizeof bad, &used);
    assert (rc == 0);
    rc = s_decodes (bad, used);
    assert (rc == -1);
    other = granted;
    other.path = "/world/c";
    used = 0;
    rc = state_msg_update_put (&other, bad, sizeof bad, &used);
    assert (rc == 0);
    rc = s_decodes (bad, used);
    assert (rc == -1);
    other.path = "/world/a";
    used = 0;
    rc = state_msg_update_put (&other, bad, sizeof bad, &used);
    assert (rc == 0);
    rc = s_decodes (bad, used);
    assert (rc == 1);
    //  A grant that does not decode (bad magic, zero key id)
    bad [1] = 'X';
    rc = s_decodes (bad, used);
    assert (rc == -1);
    bad [1] = 'S';
    bad [1 + grant_size - 67] = 0;  //  key id 1 -> 0 (before leaves, leaf)
    rc = s_decodes (bad, used);
    assert (rc == -1);
    //  A grant that does not fit is not written
    used = sizeof two - state_msg_update_size (8, 7, 2, 4);
    rc = state_msg_update_put (&granted, two, sizeof two, &used);
    assert (rc == -1
            && used == sizeof two - state_msg_update_size (8, 7, 2, 4));

    //  ACK round trip and its checks
    state_msg_ack_t ack = {77, 1000, 0xfffffffffffffffeu, 64}, back;
    uint8_t ack_body [STATE_MSG_ACK_BODY];
    state_msg_ack_encode (&ack, ack_body);
    rc = state_msg_ack_decode (&back, ack_body, sizeof ack_body);
    assert (rc == 0);
    assert (back.session == 77 && back.top == 1000 && back.window == 64);
    assert (back.bits == ack.bits);
    rc = state_msg_ack_decode (&back, ack_body, sizeof ack_body - 1);
    assert (rc == -1);
    ack.window = 0;
    state_msg_ack_encode (&ack, ack_body);
    rc = state_msg_ack_decode (&back, ack_body, sizeof ack_body);
    assert (rc == -1);
    ack.window = 65536;
    state_msg_ack_encode (&ack, ack_body);
    rc = state_msg_ack_decode (&back, ack_body, sizeof ack_body);
    assert (rc == -1);

    if (verbose)
        printf ("OK\n");
    return 0;
}

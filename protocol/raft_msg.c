/*  raft_msg: codec for Raft messages between homeservers
    (protocol/raft-wire.md). */

#include "protocol/raft_msg.h"
#include "common/sf_cert.h"
#include "common/sf_name.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAGIC_0 0x53  //  'S'
#define S_MAGIC_1 0x46  //  'F'
//  magic (2), version, type, sender, address length
#define S_HEADER_FIXED (2 + 1 + 1 + 8 + 2)

//  --------------------------------------------------------------------------
//  Writing: the caller sized the buffer with raft_msg_size, so a writer
//  only checks that it stays inside it.

typedef struct {
    uint8_t *cursor;  //  next byte to write
    uint8_t *limit;   //  one past the end
} s_writer_t;

static void
s_put (s_writer_t *self, const void *data, size_t size)
{
    assert ((size_t) (self->limit - self->cursor) >= size);
    if (size)
        memcpy (self->cursor, data, size);
    self->cursor += size;
}

static void
s_put_uint (s_writer_t *self, uint64_t value, unsigned bytes)
{
    uint8_t buffer [8];
    for (unsigned index = 0; index < bytes; index++)
        buffer [index] = (uint8_t) (value >> (8 * (bytes - 1 - index)));
    s_put (self, buffer, bytes);
}

//  A string: its length in 2 bytes, then its bytes.
static void
s_put_string (s_writer_t *self, const char *text)
{
    size_t size = strlen (text);
    s_put_uint (self, size, 2);
    s_put (self, text, size);
}

//  The frame header (raft-wire.md section 3).
static void
s_put_header (s_writer_t *self, uint64_t type, raft_id sender,
              const char *address)
{
    s_put_uint (self, S_MAGIC_0, 1);
    s_put_uint (self, S_MAGIC_1, 1);
    s_put_uint (self, RAFT_MSG_VERSION, 1);
    s_put_uint (self, type, 1);
    s_put_uint (self, sender, 8);
    s_put_string (self, address);
}

//  --------------------------------------------------------------------------
//  Reading: every read checks the remaining bytes first; an overrun marks
//  the reader bad and yields zeros, so callers check once at the end.

typedef struct {
    const uint8_t *cursor;  //  next byte to read
    size_t left;            //  bytes remaining
    bool bad;               //  an overrun happened
} s_reader_t;

static uint64_t
s_get_uint (s_reader_t *self, unsigned bytes)
{
    if (self->bad || self->left < bytes) {
        self->bad = true;
        return 0;
    }
    uint64_t value = 0;
    for (unsigned index = 0; index < bytes; index++)
        value = (value << 8) | self->cursor [index];
    self->cursor += bytes;
    self->left -= bytes;
    return value;
}

//  Lend SIZE bytes from the frame, or NULL (and bad) if they are not there.
static const uint8_t *
s_get_bytes (s_reader_t *self, uint64_t size)
{
    if (self->bad || self->left < size) {
        self->bad = true;
        return NULL;
    }
    const uint8_t *bytes = self->cursor;
    self->cursor += size;
    self->left -= (size_t) size;
    return bytes;
}

//  --------------------------------------------------------------------------

//  Bytes of the body of MESSAGE, or 0 if it cannot be encoded.
static uint64_t
s_body_size (const struct raft_message *message, uint64_t *conf_size)
{
    switch (message->type) {
        case RAFT_APPEND_ENTRIES: {
            const struct raft_append_entries *body = &message->append_entries;
            if (body->n_entries > RAFT_MSG_MAX_ENTRIES)
                return 0;
            uint64_t size = 1 + 4 * 8 + 4;
            for (unsigned index = 0; index < body->n_entries; index++) {
                if (body->entries [index].buf.len > UINT32_MAX)
                    return 0;
                size += 8 + 1 + 4 + body->entries [index].buf.len;
            }
            return size;
        }
        case RAFT_APPEND_ENTRIES_RESULT:
            return 1 + 3 * 8 + 2 + 2;
        case RAFT_REQUEST_VOTE:
            return 1 + 4 * 8 + 1;
        case RAFT_REQUEST_VOTE_RESULT:
            return 1 + 8 + 1 + 2 + 2;
        case RAFT_INSTALL_SNAPSHOT: {
            //  The configuration is encoded to learn its size; the encoder
            //  encodes it again (snapshots are rare).
            struct raft_buffer conf;
            if (raft_configuration_encode (&message->install_snapshot.conf,
                                           &conf))
                return 0;
            *conf_size = conf.len;
            raft_free (conf.base);
            if (*conf_size > RAFT_MSG_MAX_CONF)
                return 0;
            return 1 + 4 * 8 + 4 + *conf_size + 8
                   + message->install_snapshot.data.len;
        }
        case RAFT_TIMEOUT_NOW:
            return 1 + 3 * 8;
    }
    return 0;
}

size_t
raft_msg_size (const struct raft_message *message, const char *address)
{
    size_t address_size = address ? strlen (address) : 0;
    if (address_size == 0 || address_size > RAFT_MSG_MAX_ADDRESS)
        return 0;
    uint64_t conf_size = 0;
    uint64_t body = s_body_size (message, &conf_size);
    if (body == 0)
        return 0;
    uint64_t total = S_HEADER_FIXED + address_size + body;
    return total > RAFT_MSG_MAX_SIZE ? 0 : (size_t) total;
}

int
raft_msg_encode (const struct raft_message *message, raft_id sender,
                 const char *address, uint8_t *buffer, size_t size)
{
    if (size == 0 || raft_msg_size (message, address) != size || sender == 0)
        return -1;
    s_writer_t writer = {buffer, buffer + size};
    s_writer_t *w = &writer;
    s_put_header (w, (uint64_t) message->type, sender, address);
    switch (message->type) {
        case RAFT_APPEND_ENTRIES: {
            const struct raft_append_entries *body = &message->append_entries;
            s_put_uint (w, body->version, 1);
            s_put_uint (w, body->term, 8);
            s_put_uint (w, body->prev_log_index, 8);
            s_put_uint (w, body->prev_log_term, 8);
            s_put_uint (w, body->leader_commit, 8);
            s_put_uint (w, body->n_entries, 4);
            for (unsigned index = 0; index < body->n_entries; index++) {
                const struct raft_entry *entry = &body->entries [index];
                s_put_uint (w, entry->term, 8);
                s_put_uint (w, (uint64_t) entry->type, 1);
                s_put_uint (w, entry->buf.len, 4);
                s_put (w, entry->buf.base, entry->buf.len);
            }
            break;
        }
        case RAFT_APPEND_ENTRIES_RESULT: {
            const struct raft_append_entries_result *body =
                &message->append_entries_result;
            s_put_uint (w, body->version, 1);
            s_put_uint (w, body->term, 8);
            s_put_uint (w, body->rejected, 8);
            s_put_uint (w, body->last_log_index, 8);
            s_put_uint (w, body->features, 2);
            s_put_uint (w, body->capacity, 2);
            break;
        }
        case RAFT_REQUEST_VOTE: {
            const struct raft_request_vote *body = &message->request_vote;
            s_put_uint (w, body->version, 1);
            s_put_uint (w, body->term, 8);
            s_put_uint (w, body->candidate_id, 8);
            s_put_uint (w, body->last_log_index, 8);
            s_put_uint (w, body->last_log_term, 8);
            s_put_uint (w,
                        (body->disrupt_leader ? 1u : 0u)
                            | (body->pre_vote ? 2u : 0u),
                        1);
            break;
        }
        case RAFT_REQUEST_VOTE_RESULT: {
            const struct raft_request_vote_result *body =
                &message->request_vote_result;
            s_put_uint (w, body->version, 1);
            s_put_uint (w, body->term, 8);
            s_put_uint (
                w, (body->vote_granted ? 1u : 0u) | (body->pre_vote ? 2u : 0u),
                1);
            s_put_uint (w, body->features, 2);
            s_put_uint (w, body->capacity, 2);
            break;
        }
        case RAFT_INSTALL_SNAPSHOT: {
            const struct raft_install_snapshot *body =
                &message->install_snapshot;
            struct raft_buffer conf;
            if (raft_configuration_encode (&body->conf, &conf))
                return -1;
            s_put_uint (w, body->version, 1);
            s_put_uint (w, body->term, 8);
            s_put_uint (w, body->last_index, 8);
            s_put_uint (w, body->last_term, 8);
            s_put_uint (w, body->conf_index, 8);
            s_put_uint (w, conf.len, 4);
            s_put (w, conf.base, conf.len);
            raft_free (conf.base);
            s_put_uint (w, body->data.len, 8);
            s_put (w, body->data.base, body->data.len);
            break;
        }
        case RAFT_TIMEOUT_NOW: {
            const struct raft_timeout_now *body = &message->timeout_now;
            s_put_uint (w, body->version, 1);
            s_put_uint (w, body->term, 8);
            s_put_uint (w, body->last_log_index, 8);
            s_put_uint (w, body->last_log_term, 8);
            break;
        }
    }
    return writer.cursor == writer.limit ? 0 : -1;
}

//  Decode AppendEntries entries into one array and one data batch.
static int
s_decode_entries (s_reader_t *r, struct raft_append_entries *body)
{
    uint64_t count = s_get_uint (r, 4);
    if (r->bad || count > RAFT_MSG_MAX_ENTRIES)
        return -1;
    body->n_entries = (unsigned) count;
    body->entries = NULL;
    if (count == 0)
        return 0;
    //  First pass: validate every header and add up the data, allocating
    //  nothing until the whole frame is known to be well formed.
    s_reader_t scan = *r;
    uint64_t total = 0;
    for (uint64_t index = 0; index < count; index++) {
        s_get_uint (&scan, 8);
        uint64_t type = s_get_uint (&scan, 1);
        uint64_t length = s_get_uint (&scan, 4);
        s_get_bytes (&scan, length);
        if (scan.bad || type < RAFT_COMMAND || type > RAFT_CHANGE)
            return -1;
        total += length;
    }
    body->entries = (struct raft_entry *) raft_calloc (
        (size_t) count, sizeof (struct raft_entry));
    uint8_t *batch = (uint8_t *) raft_malloc (total ? (size_t) total : 1);
    if (!body->entries || !batch) {
        raft_free (body->entries);
        raft_free (batch);
        body->entries = NULL;
        return -1;
    }
    uint8_t *cursor = batch;
    for (uint64_t index = 0; index < count; index++) {
        struct raft_entry *entry = &body->entries [index];
        entry->term = s_get_uint (r, 8);
        entry->type = (enum raft_entry_type) s_get_uint (r, 1);
        size_t length = (size_t) s_get_uint (r, 4);
        const uint8_t *data = s_get_bytes (r, length);
        if (length)
            memcpy (cursor, data, length);
        entry->buf.base = cursor;
        entry->buf.len = length;
        entry->batch = batch;
        cursor += length;
    }
    return 0;
}

//  True if CONF (SIZE bytes) is a well-formed raft_configuration_encode
//  image: version 1, a little-endian u64 count, then per server a
//  little-endian u64 id, a null-terminated address and a role byte, then at
//  most 7 bytes of zero padding. raft_configuration_decode trusts its input
//  (it runs strlen on addresses), so nothing reaches it unchecked.
static bool
s_conf_valid (const uint8_t *conf, size_t size)
{
    if (size < 9 || conf [0] != 1)
        return false;
    uint64_t count = 0;
    for (int index = 8; index >= 1; index--)
        count = (count << 8) | conf [index];
    if (count == 0 || count > RAFT_MSG_MAX_SERVERS)
        return false;
    size_t offset = 9;
    for (uint64_t server = 0; server < count; server++) {
        if (size - offset < 8 + 1 + 1)
            return false;
        offset += 8;
        const uint8_t *end =
            (const uint8_t *) memchr (conf + offset, 0, size - offset);
        size_t length = end ? (size_t) (end - (conf + offset)) : 0;
        if (!end || length == 0 || length > RAFT_MSG_MAX_ADDRESS)
            return false;
        offset += length + 1;
        if (offset >= size || conf [offset] > RAFT_SPARE)
            return false;
        offset++;
    }
    if (size - offset > 7)
        return false;
    for (; offset < size; offset++)
        if (conf [offset] != 0)
            return false;
    return true;
}

static int
s_decode_snapshot (s_reader_t *r, struct raft_install_snapshot *body)
{
    body->version = (unsigned char) s_get_uint (r, 1);
    body->term = s_get_uint (r, 8);
    body->last_index = s_get_uint (r, 8);
    body->last_term = s_get_uint (r, 8);
    body->conf_index = s_get_uint (r, 8);
    uint64_t conf_size = s_get_uint (r, 4);
    if (conf_size > RAFT_MSG_MAX_CONF)
        return -1;
    const uint8_t *conf = s_get_bytes (r, conf_size);
    uint64_t data_size = s_get_uint (r, 8);
    const uint8_t *data = s_get_bytes (r, data_size);
    if (r->bad || r->left != 0 || !s_conf_valid (conf, (size_t) conf_size))
        return -1;
    //  The library wants a mutable buffer it only reads. A well-formed image
    //  can still fail to decode: two servers with one id, for example.
    struct raft_buffer conf_buffer = {(void *) conf, (size_t) conf_size};
    if (raft_msg_conf_decode (&conf_buffer, &body->conf))
        return -1;
    body->data.len = (size_t) data_size;
    body->data.base = raft_malloc (data_size ? (size_t) data_size : 1);
    if (!body->data.base) {
        raft_configuration_close (&body->conf);
        return -1;
    }
    if (data_size)
        memcpy (body->data.base, data, (size_t) data_size);
    return 0;
}

int
raft_msg_conf_decode (const struct raft_buffer *buffer,
                      struct raft_configuration *conf)
{
    int rc = raft_configuration_decode (buffer, conf);
    if (rc)
        raft_configuration_init (conf);
    return rc;
}

size_t
raft_msg_encode_probe (int type, raft_id sender, const char *address,
                       raft_term term, uint64_t seq, uint8_t *buffer,
                       size_t size)
{
    size_t address_size = address ? strlen (address) : 0;
    size_t total = RAFT_MSG_PROBE_SIZE + address_size;
    if (address_size == 0 || address_size > RAFT_MSG_MAX_ADDRESS || total > size
        || sender == 0
        || (type != RAFT_MSG_READ_PROBE && type != RAFT_MSG_READ_PROBE_ACK))
        return 0;
    s_writer_t writer = {buffer, buffer + total};
    s_put_header (&writer, (uint64_t) type, sender, address);
    s_put_uint (&writer, term, 8);
    s_put_uint (&writer, seq, 8);
    return total;
}

size_t
raft_msg_encode_digest (raft_id sender, const char *address, raft_index index,
                        const uint8_t *digest, uint8_t *buffer, size_t size)
{
    size_t address_size = address ? strlen (address) : 0;
    size_t total = RAFT_MSG_DIGEST_SIZE + address_size;
    if (address_size == 0 || address_size > RAFT_MSG_MAX_ADDRESS || total > size
        || sender == 0 || index == 0 || !digest)
        return 0;
    s_writer_t writer = {buffer, buffer + total};
    s_put_header (&writer, RAFT_MSG_DIGEST, sender, address);
    s_put_uint (&writer, index, 8);
    s_put (&writer, digest, RAFT_MSG_DIGEST_BYTES);
    return total;
}

//  A member's fields by the rules of raft-wire.md section 3 (Members).
static bool
s_member_valid (const raft_msg_member_t *member)
{
    size_t raft = strlen (member->raft);
    return member->id != 0 && sf_name_valid (member->name) && raft > 0
           && raft <= RAFT_MSG_MAX_ADDRESS
           && strlen (member->api) <= RAFT_MSG_MAX_ADDRESS
           && sf_cert_key_valid (member->key);
}

size_t
raft_msg_encode_members (int type, raft_id sender, const char *address,
                         const raft_msg_member_t *members, unsigned n,
                         uint8_t *buffer, size_t size)
{
    size_t address_size = address ? strlen (address) : 0;
    if (address_size == 0 || address_size > RAFT_MSG_MAX_ADDRESS || sender == 0
        || n > RAFT_MSG_MAX_MEMBERS
        || (type == RAFT_MSG_MEMBERS_QUERY ? n != 0 : type != RAFT_MSG_MEMBERS))
        return 0;
    size_t total = S_HEADER_FIXED + address_size;
    if (type == RAFT_MSG_MEMBERS) {
        total += 1;
        for (unsigned at = 0; at < n; at++) {
            if (!s_member_valid (&members [at]))
                return 0;
            total += 8 + 2 + strlen (members [at].name) + 2
                     + strlen (members [at].raft) + 2
                     + strlen (members [at].api) + RAFT_MSG_KEY_SIZE;
        }
    }
    if (total > size)
        return 0;
    s_writer_t writer = {buffer, buffer + total};
    s_put_header (&writer, (uint64_t) type, sender, address);
    if (type == RAFT_MSG_MEMBERS) {
        s_put_uint (&writer, n, 1);
        for (unsigned at = 0; at < n; at++) {
            s_put_uint (&writer, members [at].id, 8);
            s_put_string (&writer, members [at].name);
            s_put_string (&writer, members [at].raft);
            s_put_string (&writer, members [at].api);
            s_put (&writer, members [at].key, RAFT_MSG_KEY_SIZE);
        }
    }
    return total;
}

//  Read a string of at most MAX bytes, without NUL, into TEXT (MAX + 1
//  bytes). False (and the reader bad) if it is not one.
static bool
s_get_string (s_reader_t *r, char *text, size_t max)
{
    uint64_t size = s_get_uint (r, 2);
    const uint8_t *bytes = s_get_bytes (r, size);
    if (r->bad || size > max || memchr (bytes, 0, (size_t) size)) {
        r->bad = true;
        return false;
    }
    memcpy (text, bytes, (size_t) size);
    text [size] = 0;
    return true;
}

//  The body of a Members frame, into SELF's members (allocated here).
static int
s_decode_members (s_reader_t *r, raft_msg_t *self)
{
    uint64_t n = s_get_uint (r, 1);
    if (r->bad || n > RAFT_MSG_MAX_MEMBERS)
        return -1;
    self->members =
        (raft_msg_member_t *) calloc (n ? n : 1, sizeof (raft_msg_member_t));
    if (!self->members)
        return -1;
    for (unsigned at = 0; at < n; at++) {
        raft_msg_member_t *member = &self->members [at];
        member->id = s_get_uint (r, 8);
        const uint8_t *key = NULL;
        if (s_get_string (r, member->name, RAFT_MSG_MAX_NAME)
            && s_get_string (r, member->raft, RAFT_MSG_MAX_ADDRESS)
            && s_get_string (r, member->api, RAFT_MSG_MAX_ADDRESS))
            key = s_get_bytes (r, RAFT_MSG_KEY_SIZE);
        if (key && !memchr (key, 0, RAFT_MSG_KEY_SIZE))
            memcpy (member->key, key, RAFT_MSG_KEY_SIZE);
        if (r->bad || !s_member_valid (member)) {
            raft_msg_release (self);
            return -1;
        }
        self->n_members++;
    }
    if (r->left != 0) {
        raft_msg_release (self);
        return -1;
    }
    return 0;
}

int
raft_msg_decode (raft_msg_t *self, const uint8_t *data, size_t size)
{
    memset (&self->message, 0, sizeof self->message);
    self->address [0] = 0;
    self->probe = 0;
    self->members = NULL;
    self->n_members = 0;
    self->digest_index = 0;
    if (size > RAFT_MSG_MAX_SIZE)
        return -1;
    s_reader_t reader = {data, size, false};
    s_reader_t *r = &reader;
    if (s_get_uint (r, 1) != S_MAGIC_0 || s_get_uint (r, 1) != S_MAGIC_1
        || s_get_uint (r, 1) != RAFT_MSG_VERSION)
        return -1;
    uint64_t type = s_get_uint (r, 1);
    raft_id sender = s_get_uint (r, 8);
    uint64_t address_size = s_get_uint (r, 2);
    const uint8_t *address = s_get_bytes (r, address_size);
    if (r->bad || sender == 0 || address_size == 0
        || address_size > RAFT_MSG_MAX_ADDRESS
        || memchr (address, 0, (size_t) address_size))
        return -1;
    memcpy (self->address, address, (size_t) address_size);
    self->address [address_size] = 0;

    struct raft_message *message = &self->message;
    message->server_id = sender;
    message->server_address = self->address;
    uint64_t flags;
    switch (type) {
        case RAFT_APPEND_ENTRIES: {
            struct raft_append_entries *body = &message->append_entries;
            message->type = RAFT_APPEND_ENTRIES;
            body->version = (unsigned char) s_get_uint (r, 1);
            body->term = s_get_uint (r, 8);
            body->prev_log_index = s_get_uint (r, 8);
            body->prev_log_term = s_get_uint (r, 8);
            body->leader_commit = s_get_uint (r, 8);
            if (r->bad || s_decode_entries (r, body))
                return -1;
            if (r->left != 0) {
                raft_msg_release (self);
                return -1;
            }
            return 0;
        }
        case RAFT_APPEND_ENTRIES_RESULT: {
            struct raft_append_entries_result *body =
                &message->append_entries_result;
            message->type = RAFT_APPEND_ENTRIES_RESULT;
            body->version = (unsigned char) s_get_uint (r, 1);
            body->term = s_get_uint (r, 8);
            body->rejected = s_get_uint (r, 8);
            body->last_log_index = s_get_uint (r, 8);
            body->features = (unsigned short) s_get_uint (r, 2);
            body->capacity = (unsigned short) s_get_uint (r, 2);
            break;
        }
        case RAFT_REQUEST_VOTE: {
            struct raft_request_vote *body = &message->request_vote;
            message->type = RAFT_REQUEST_VOTE;
            body->version = (unsigned char) s_get_uint (r, 1);
            body->term = s_get_uint (r, 8);
            body->candidate_id = s_get_uint (r, 8);
            body->last_log_index = s_get_uint (r, 8);
            body->last_log_term = s_get_uint (r, 8);
            flags = s_get_uint (r, 1);
            if (flags > 3)
                return -1;
            body->disrupt_leader = flags & 1;
            body->pre_vote = (flags & 2) != 0;
            break;
        }
        case RAFT_REQUEST_VOTE_RESULT: {
            struct raft_request_vote_result *body =
                &message->request_vote_result;
            message->type = RAFT_REQUEST_VOTE_RESULT;
            body->version = (unsigned char) s_get_uint (r, 1);
            body->term = s_get_uint (r, 8);
            flags = s_get_uint (r, 1);
            if (flags > 3)
                return -1;
            body->vote_granted = flags & 1;
            body->pre_vote = (flags & 2) != 0;
            body->features = (unsigned short) s_get_uint (r, 2);
            body->capacity = (unsigned short) s_get_uint (r, 2);
            break;
        }
        case RAFT_INSTALL_SNAPSHOT:
            message->type = RAFT_INSTALL_SNAPSHOT;
            return s_decode_snapshot (r, &message->install_snapshot);
        case RAFT_TIMEOUT_NOW: {
            struct raft_timeout_now *body = &message->timeout_now;
            message->type = RAFT_TIMEOUT_NOW;
            body->version = (unsigned char) s_get_uint (r, 1);
            body->term = s_get_uint (r, 8);
            body->last_log_index = s_get_uint (r, 8);
            body->last_log_term = s_get_uint (r, 8);
            break;
        }
        case RAFT_MSG_READ_PROBE:
        case RAFT_MSG_READ_PROBE_ACK:
            self->probe = (int) type;
            self->probe_term = s_get_uint (r, 8);
            self->probe_seq = s_get_uint (r, 8);
            break;
        case RAFT_MSG_MEMBERS_QUERY:
            self->probe = (int) type;
            break;
        case RAFT_MSG_MEMBERS:
            self->probe = (int) type;
            return s_decode_members (r, self);
        case RAFT_MSG_DIGEST: {
            self->probe = (int) type;
            self->digest_index = s_get_uint (r, 8);
            const uint8_t *digest = s_get_bytes (r, RAFT_MSG_DIGEST_BYTES);
            if (r->bad || self->digest_index == 0)
                return -1;
            memcpy (self->digest, digest, RAFT_MSG_DIGEST_BYTES);
            break;
        }
        default:
            return -1;
    }
    return (r->bad || r->left != 0) ? -1 : 0;
}

void
raft_msg_release (raft_msg_t *self)
{
    free (self->members);
    self->members = NULL;
    self->n_members = 0;
    struct raft_message *message = &self->message;
    if (message->type == RAFT_APPEND_ENTRIES
        && message->append_entries.entries) {
        if (message->append_entries.n_entries)
            raft_free (message->append_entries.entries [0].batch);
        raft_free (message->append_entries.entries);
        message->append_entries.entries = NULL;
        message->append_entries.n_entries = 0;
    }
    else if (message->type == RAFT_INSTALL_SNAPSHOT) {
        raft_configuration_close (&message->install_snapshot.conf);
        raft_free (message->install_snapshot.data.base);
        message->install_snapshot.data.base = NULL;
    }
}

//  --------------------------------------------------------------------------
//  Self test

//  Encode MESSAGE, check every truncation and one extra byte are refused,
//  and decode it back into OUT.
static void
s_round_trip (const struct raft_message *message, raft_msg_t *out)
{
    const char *address = "tcp://10.0.0.1:7101";
    size_t size = raft_msg_size (message, address);
    assert (size > 0);
    uint8_t *buffer = (uint8_t *) malloc (size + 1);
    assert (raft_msg_encode (message, 1, address, buffer, size) == 0);
    for (size_t cut = 0; cut < size; cut++) {
        raft_msg_t scratch;
        assert (raft_msg_decode (&scratch, buffer, cut) == -1);
    }
    buffer [size] = 0;
    raft_msg_t scratch;
    assert (raft_msg_decode (&scratch, buffer, size + 1) == -1);
    assert (raft_msg_decode (out, buffer, size) == 0);
    assert (out->message.type == message->type);
    assert (out->message.server_id == 1);
    assert (strcmp (out->message.server_address, address) == 0);
    free (buffer);
}

int
raft_msg_test (bool verbose)
{
    if (verbose)
        printf (" * raft_msg: ");
    raft_msg_t out;

    //  The example frame of protocol/raft-wire.md section 8.
    struct raft_message heartbeat = {.type = RAFT_APPEND_ENTRIES};
    heartbeat.append_entries.term = 7;
    heartbeat.append_entries.prev_log_index = 41;
    heartbeat.append_entries.prev_log_term = 7;
    heartbeat.append_entries.leader_commit = 41;
    const char *address = "tcp://10.0.0.1:7101";
    uint8_t frame [128];
    size_t size = raft_msg_size (&heartbeat, address);
    assert (size == 4 + 8 + 2 + 19 + 1 + 4 * 8 + 4);
    assert (raft_msg_encode (&heartbeat, 1, address, frame, size) == 0);
    const uint8_t expect [] = {0x53, 0x46, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 19};
    assert (memcmp (frame, expect, sizeof expect) == 0);
    assert (memcmp (frame + 14, address, 19) == 0);
    assert (frame [14 + 19 + 1 + 8 + 7] == 41);
    assert (raft_msg_decode (&out, frame, size) == 0);
    assert (out.message.append_entries.n_entries == 0);
    assert (out.message.append_entries.leader_commit == 41);
    raft_msg_release (&out);

    //  Wrong magic, version, type, zero sender are refused.
    uint8_t bad [128];
    memcpy (bad, frame, size);
    bad [0] = 'X';
    assert (raft_msg_decode (&out, bad, size) == -1);
    memcpy (bad, frame, size);
    bad [2] = 2;
    assert (raft_msg_decode (&out, bad, size) == -1);
    memcpy (bad, frame, size);
    bad [3] = 7;
    assert (raft_msg_decode (&out, bad, size) == -1);
    memcpy (bad, frame, size);
    bad [11] = 0;
    assert (raft_msg_decode (&out, bad, size) == -1);

    //  AppendEntries with entries: data lands in one batch.
    char first [] = "create /world/a";
    char second [] = "";
    struct raft_entry entries [2] = {
        {.term = 6, .type = RAFT_COMMAND, .buf = {first, sizeof first}},
        {.term = 7, .type = RAFT_BARRIER, .buf = {second, 0}},
    };
    struct raft_message append = heartbeat;
    append.append_entries.entries = entries;
    append.append_entries.n_entries = 2;
    s_round_trip (&append, &out);
    const struct raft_append_entries *got = &out.message.append_entries;
    assert (got->n_entries == 2);
    assert (got->entries [0].term == 6);
    assert (got->entries [0].type == RAFT_COMMAND);
    assert (got->entries [0].buf.len == sizeof first);
    assert (memcmp (got->entries [0].buf.base, first, sizeof first) == 0);
    assert (got->entries [1].type == RAFT_BARRIER);
    assert (got->entries [1].buf.len == 0);
    assert (got->entries [0].batch == got->entries [1].batch);
    raft_msg_release (&out);

    //  An entry type outside 1..3 is refused.
    entries [1].type = (enum raft_entry_type) 9;
    size = raft_msg_size (&append, address);
    uint8_t *buffer = (uint8_t *) malloc (size);
    assert (raft_msg_encode (&append, 1, address, buffer, size) == 0);
    assert (raft_msg_decode (&out, buffer, size) == -1);
    free (buffer);

    struct raft_message result = {.type = RAFT_APPEND_ENTRIES_RESULT};
    result.append_entries_result.term = 9;
    result.append_entries_result.rejected = 12;
    result.append_entries_result.last_log_index = 11;
    result.append_entries_result.features = 1;
    result.append_entries_result.capacity = 300;
    s_round_trip (&result, &out);
    assert (out.message.append_entries_result.rejected == 12);
    assert (out.message.append_entries_result.capacity == 300);

    struct raft_message vote = {.type = RAFT_REQUEST_VOTE};
    vote.request_vote.version = 2;
    vote.request_vote.term = 3;
    vote.request_vote.candidate_id = 2;
    vote.request_vote.last_log_index = 40;
    vote.request_vote.last_log_term = 2;
    vote.request_vote.pre_vote = true;
    s_round_trip (&vote, &out);
    assert (out.message.request_vote.version == 2);
    assert (out.message.request_vote.pre_vote);
    assert (!out.message.request_vote.disrupt_leader);
    assert (out.message.request_vote.candidate_id == 2);

    struct raft_message granted = {.type = RAFT_REQUEST_VOTE_RESULT};
    granted.request_vote_result.term = 3;
    granted.request_vote_result.vote_granted = true;
    s_round_trip (&granted, &out);
    assert (out.message.request_vote_result.vote_granted);
    assert (!out.message.request_vote_result.pre_vote);

    struct raft_message timeout_now = {.type = RAFT_TIMEOUT_NOW};
    timeout_now.timeout_now.term = 4;
    timeout_now.timeout_now.last_log_index = 99;
    s_round_trip (&timeout_now, &out);
    assert (out.message.timeout_now.last_log_index == 99);

    struct raft_message snapshot = {.type = RAFT_INSTALL_SNAPSHOT};
    struct raft_install_snapshot *install = &snapshot.install_snapshot;
    install->term = 5;
    install->last_index = 1000;
    install->last_term = 4;
    install->conf_index = 3;
    raft_configuration_init (&install->conf);
    raft_configuration_add (&install->conf, 1, "tcp://10.0.0.1:7101",
                            RAFT_VOTER);
    raft_configuration_add (&install->conf, 2, "tcp://10.0.0.2:7101",
                            RAFT_VOTER);
    char image [] = "sqlite image";
    install->data.base = image;
    install->data.len = sizeof image;
    s_round_trip (&snapshot, &out);
    const struct raft_install_snapshot *back = &out.message.install_snapshot;
    assert (back->last_index == 1000);
    assert (back->conf.n == 2);
    assert (back->conf.servers [1].id == 2);
    assert (strcmp (back->conf.servers [1].address, "tcp://10.0.0.2:7101")
            == 0);
    assert (back->data.len == sizeof image);
    assert (memcmp (back->data.base, image, sizeof image) == 0);
    raft_msg_release (&out);

    //  Two servers with one id pass the image check but not the library's
    //  decoder, which frees what it had built: refused, freed once.
    struct raft_buffer twice;
    assert (raft_configuration_encode (&install->conf, &twice) == 0);
    size_t wire_size = raft_msg_size (&snapshot, address);
    uint8_t *wire = (uint8_t *) malloc (wire_size);
    assert (raft_msg_encode (&snapshot, 7, address, wire, wire_size) == 0);
    uint8_t *conf_at = wire + S_HEADER_FIXED + strlen (address) + 1 + 4 * 8 + 4;
    assert (memcmp (conf_at, twice.base, twice.len) == 0);
    size_t second_id = 9 + 8 + strlen ("tcp://10.0.0.1:7101") + 1 + 1;
    assert (conf_at [second_id] == 2);
    conf_at [second_id] = 1;
    assert (raft_msg_decode (&out, wire, wire_size) == -1);
    free (wire);
    raft_free (twice.base);
    raft_configuration_close (&install->conf);

    //  A configuration conf_image is checked before the library sees it.
    struct raft_buffer conf_image;
    raft_configuration_init (&install->conf);
    raft_configuration_add (&install->conf, 258, "tcp://x:1", RAFT_SPARE);
    assert (raft_configuration_encode (&install->conf, &conf_image) == 0);
    const uint8_t *bytes = (const uint8_t *) conf_image.base;
    assert (s_conf_valid (bytes, conf_image.len));
    for (size_t cut = 0; cut < conf_image.len; cut++)
        if (cut < 9 + 8 + 10 + 1)
            assert (!s_conf_valid (bytes, cut));
    uint8_t *mangled = (uint8_t *) malloc (conf_image.len);
    memcpy (mangled, bytes, conf_image.len);
    mangled [9 + 8 + 9] = 'x';  //  the address loses its terminator
    assert (!s_conf_valid (mangled, 9 + 8 + 10));
    memcpy (mangled, bytes, conf_image.len);
    mangled [9 + 8 + 10] = 7;  //  no such role
    assert (!s_conf_valid (mangled, conf_image.len));
    memcpy (mangled, bytes, conf_image.len);
    mangled [0] = 2;  //  unknown format version
    assert (!s_conf_valid (mangled, conf_image.len));
    free (mangled);
    raft_free (conf_image.base);
    raft_configuration_close (&install->conf);

    //  Read probes: exact size, every truncation refused.
    uint8_t probe [RAFT_MSG_PROBE_SIZE + 32];
    size_t probe_size = raft_msg_encode_probe (RAFT_MSG_READ_PROBE, 3, address,
                                               9, 77, probe, sizeof probe);
    assert (probe_size == RAFT_MSG_PROBE_SIZE + strlen (address));
    assert (raft_msg_decode (&out, probe, probe_size) == 0);
    assert (out.probe == RAFT_MSG_READ_PROBE);
    assert (out.message.server_id == 3);
    assert (out.probe_term == 9 && out.probe_seq == 77);
    for (size_t cut = 0; cut < probe_size; cut++)
        assert (raft_msg_decode (&out, probe, cut) == -1);
    assert (raft_msg_encode_probe (5, 3, address, 9, 77, probe, sizeof probe)
            == 0);
    assert (raft_msg_encode_probe (RAFT_MSG_READ_PROBE_ACK, 3, address, 9, 77,
                                   probe, 10)
            == 0);

    //  Digest: exact size, every truncation and an extra byte refused, and
    //  index 0 is neither encoded nor decoded.
    uint8_t digest [RAFT_MSG_DIGEST_BYTES];
    for (unsigned at = 0; at < RAFT_MSG_DIGEST_BYTES; at++)
        digest [at] = (uint8_t) (0xA0 + at);
    uint8_t digest_frame [RAFT_MSG_DIGEST_SIZE + 32];
    size_t digest_size = raft_msg_encode_digest (
        3, address, 118, digest, digest_frame, sizeof digest_frame);
    assert (digest_size == RAFT_MSG_DIGEST_SIZE + strlen (address));
    assert (raft_msg_decode (&out, digest_frame, digest_size) == 0);
    assert (out.probe == RAFT_MSG_DIGEST && out.message.server_id == 3);
    assert (out.digest_index == 118);
    assert (memcmp (out.digest, digest, sizeof digest) == 0);
    for (size_t cut = 0; cut < digest_size; cut++)
        assert (raft_msg_decode (&out, digest_frame, cut) == -1);
    digest_frame [digest_size] = 0;
    assert (raft_msg_decode (&out, digest_frame, digest_size + 1) == -1);
    assert (raft_msg_encode_digest (3, address, 0, digest, digest_frame,
                                    sizeof digest_frame)
            == 0);
    assert (raft_msg_encode_digest (3, address, 118, digest, digest_frame,
                                    digest_size - 1)
            == 0);
    //  Index 0, patched into the frame (the 8 bytes before the digest).
    memset (digest_frame + digest_size - RAFT_MSG_DIGEST_BYTES - 8, 0, 8);
    assert (raft_msg_decode (&out, digest_frame, digest_size) == -1);

    //  Members: a query is the bare header; a list round-trips, and every
    //  truncation, extra byte or invalid member is refused.
    uint8_t *listed = (uint8_t *) malloc (RAFT_MSG_MEMBERS_MAX_SIZE + 1);
    size_t members_size =
        raft_msg_encode_members (RAFT_MSG_MEMBERS_QUERY, 3, address, NULL, 0,
                                 listed, RAFT_MSG_MEMBERS_MAX_SIZE);
    assert (members_size == S_HEADER_FIXED + strlen (address));
    assert (raft_msg_decode (&out, listed, members_size) == 0);
    assert (out.probe == RAFT_MSG_MEMBERS_QUERY && out.message.server_id == 3);
    raft_msg_member_t members [2] = {
        {4, "hs4", "tcp://10.0.0.4:7101", "tcp://10.0.0.4:7100",
         "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"},
        {5, "hs5", "tcp://10.0.0.5:7101", "",
         "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"}};
    members_size =
        raft_msg_encode_members (RAFT_MSG_MEMBERS, 3, address, members, 2,
                                 listed, RAFT_MSG_MEMBERS_MAX_SIZE);
    assert (members_size > 0);
    assert (raft_msg_decode (&out, listed, members_size) == 0);
    assert (out.probe == RAFT_MSG_MEMBERS && out.n_members == 2);
    assert (memcmp (out.members, members, sizeof members) == 0);
    raft_msg_release (&out);
    assert (!out.members && out.n_members == 0);
    for (size_t cut = 0; cut < members_size; cut++)
        assert (raft_msg_decode (&out, listed, cut) == -1);
    listed [members_size] = 0;
    assert (raft_msg_decode (&out, listed, members_size + 1) == -1);
    //  A key with a character outside Z85, patched into the listed.
    listed [members_size - 1] = ' ';
    assert (raft_msg_decode (&out, listed, members_size) == -1);
    //  Nothing invalid is encoded either.
    members [1].id = 0;
    assert (raft_msg_encode_members (RAFT_MSG_MEMBERS, 3, address, members, 2,
                                     listed, RAFT_MSG_MEMBERS_MAX_SIZE)
            == 0);
    members [1].id = 5;
    strcpy (members [1].name, "hs/5");
    assert (raft_msg_encode_members (RAFT_MSG_MEMBERS, 3, address, members, 2,
                                     listed, RAFT_MSG_MEMBERS_MAX_SIZE)
            == 0);
    assert (raft_msg_encode_members (RAFT_MSG_MEMBERS, 3, address, members, 1,
                                     listed, 20)
            == 0);
    assert (raft_msg_encode_members (RAFT_MSG_MEMBERS_QUERY, 3, address,
                                     members, 1, listed,
                                     RAFT_MSG_MEMBERS_MAX_SIZE)
            == 0);
    //  At most 64 members: a count of 65 is refused before anything else.
    members_size =
        raft_msg_encode_members (RAFT_MSG_MEMBERS, 3, address, members, 1,
                                 listed, RAFT_MSG_MEMBERS_MAX_SIZE);
    listed [S_HEADER_FIXED + strlen (address)] = 65;
    assert (raft_msg_decode (&out, listed, members_size) == -1);
    free (listed);

    //  Addresses must be 1..255 bytes; unknown types cannot be sized.
    assert (raft_msg_size (&heartbeat, "") == 0);
    char long_address [300];
    memset (long_address, 'a', sizeof long_address - 1);
    long_address [sizeof long_address - 1] = 0;
    assert (raft_msg_size (&heartbeat, long_address) == 0);
    struct raft_message unknown = {.type = (enum raft_message_type) 42};
    assert (raft_msg_size (&unknown, address) == 0);
    if (verbose)
        printf ("OK\n");
    return 0;
}

/*  ring_cmd: codec for ring commands (protocol/ring-commands.md). */

#include "protocol/ring_cmd.h"
#include "common/sf_json.h"
#include "protocol/api_msg.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static void
s_put_u64 (uint8_t *at, uint64_t value)
{
    for (int index = 7; index >= 0; index--) {
        at [index] = (uint8_t) value;
        value >>= 8;
    }
}

static uint64_t
s_get_u64 (const uint8_t *at)
{
    uint64_t value = 0;
    for (int index = 0; index < 8; index++)
        value = (value << 8) | at [index];
    return value;
}

int
ring_cmd_encode (const char *op, const char *principal, bool admin,
                 uint64_t time_ms, const json_t *args, uint8_t **data,
                 size_t *size)
{
    size_t op_length = strlen (op);
    uint8_t key [32];
    if (op_length == 0 || op_length > RING_CMD_MAX_OP || !api_msg_op_valid (op)
        || !principal || strlen (principal) != 40
        || !zmq_z85_decode (key, principal) || !json_is_object (args))
        return -1;
    char *text = sf_json_text (args);
    if (!text)
        return -1;
    size_t args_length = strlen (text);
    if (args_length > RING_CMD_MAX_ARGS) {
        free (text);
        return -1;
    }
    *size = RING_CMD_HEADER + op_length + 4 + args_length;
    uint8_t *buffer = (uint8_t *) malloc (*size);
    assert (buffer);
    buffer [0] = 'R';
    buffer [1] = 'C';
    buffer [2] = RING_CMD_VERSION;
    buffer [3] = admin ? 1 : 0;
    s_put_u64 (buffer + 4, time_ms);
    memcpy (buffer + 12, key, 32);
    buffer [44] = (uint8_t) op_length;
    memcpy (buffer + 45, op, op_length);
    uint8_t *cursor = buffer + 45 + op_length;
    cursor [0] = (uint8_t) (args_length >> 24);
    cursor [1] = (uint8_t) (args_length >> 16);
    cursor [2] = (uint8_t) (args_length >> 8);
    cursor [3] = (uint8_t) args_length;
    memcpy (cursor + 4, text, args_length);
    free (text);
    *data = buffer;
    return 0;
}

int
ring_cmd_decode (ring_cmd_t *self, const uint8_t *data, size_t size)
{
    memset (self, 0, sizeof *self);
    if (size < RING_CMD_HEADER + 1 + 4 || data [0] != 'R' || data [1] != 'C'
        || data [2] != RING_CMD_VERSION || (data [3] & ~1u))
        return -1;
    size_t op_length = data [44];
    if (op_length == 0 || op_length > RING_CMD_MAX_OP
        || size < RING_CMD_HEADER + op_length + 4)
        return -1;
    memcpy (self->op, data + 45, op_length);
    self->op [op_length] = 0;
    if (strlen (self->op) != op_length || !api_msg_op_valid (self->op))
        return -1;
    const uint8_t *cursor = data + 45 + op_length;
    size_t args_length = ((size_t) cursor [0] << 24)
                         | ((size_t) cursor [1] << 16)
                         | ((size_t) cursor [2] << 8) | cursor [3];
    if (args_length > RING_CMD_MAX_ARGS
        || size != RING_CMD_HEADER + op_length + 4 + args_length)
        return -1;
    self->args = json_loadb ((const char *) cursor + 4, args_length,
                             JSON_REJECT_DUPLICATES, NULL);
    if (!self->args || !json_is_object (self->args)) {
        json_decref (self->args);
        self->args = NULL;
        return -1;
    }
    self->admin = data [3] & 1;
    self->time_ms = s_get_u64 (data + 4);
    memcpy (self->principal, data + 12, 32);
    return 0;
}

int
ring_cmd_peek_op (const uint8_t *data, size_t size, char *op)
{
    if (size < RING_CMD_HEADER + 1 || data [0] != 'R' || data [1] != 'C')
        return -1;
    size_t length = data [44];
    if (length == 0 || length > RING_CMD_MAX_OP
        || size < RING_CMD_HEADER + length)
        return -1;
    memcpy (op, data + 45, length);
    op [length] = 0;
    return 0;
}

void
ring_cmd_release (ring_cmd_t *self)
{
    json_decref (self->args);
    self->args = NULL;
}

void
ring_cmd_principal (const ring_cmd_t *self, char *key)
{
    zmq_z85_encode (key, self->principal, 32);
}

int
ring_cmd_test (bool verbose)
{
    int rc;
    if (verbose)
        printf (" * ring_cmd: ");
    const char *key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    json_t *args = json_pack ("{s:s,s:s}", "path", "/world/a", "rule", "allow");
    uint8_t *data;
    size_t size;
    rc = ring_cmd_encode ("entity.create", key, true, 1795477500123u, args,
                          &data, &size);
    assert (rc == 0);
    assert (size == RING_CMD_HEADER + 13 + 4 + 34);
    ring_cmd_t cmd;
    rc = ring_cmd_decode (&cmd, data, size);
    assert (rc == 0);
    assert (cmd.admin);
    assert (cmd.time_ms == 1795477500123u);
    assert (strcmp (cmd.op, "entity.create") == 0);
    assert (json_equal (cmd.args, args));
    char peeked [RING_CMD_MAX_OP + 1];
    rc = ring_cmd_peek_op (data, size, peeked);
    assert (rc == 0);
    assert (strcmp (peeked, "entity.create") == 0);
    rc = ring_cmd_peek_op (data, 20, peeked);
    assert (rc == -1);
    char back [41];
    ring_cmd_principal (&cmd, back);
    assert (strcmp (back, key) == 0);
    ring_cmd_release (&cmd);

    //  Every truncation and one byte too many are refused.
    for (size_t cut = 0; cut < size; cut++) {
        rc = ring_cmd_decode (&cmd, data, cut);
        assert (rc == -1);
    }
    uint8_t *longer = (uint8_t *) malloc (size + 1);
    memcpy (longer, data, size);
    longer [size] = ' ';
    rc = ring_cmd_decode (&cmd, longer, size + 1);
    assert (rc == -1);
    free (longer);
    //  Reserved flag bits and other versions are refused.
    data [3] = 2;
    rc = ring_cmd_decode (&cmd, data, size);
    assert (rc == -1);
    data [3] = 0;
    data [2] = 2;
    rc = ring_cmd_decode (&cmd, data, size);
    assert (rc == -1);
    free (data);

    //  Encoding refuses what cannot be decoded.
    rc = ring_cmd_encode ("Bad Op", key, false, 0, args, &data, &size);
    assert (rc == -1);
    rc = ring_cmd_encode ("status", "short", false, 0, args, &data, &size);
    assert (rc == -1);
    json_t *array = json_array ();
    rc = ring_cmd_encode ("status", key, false, 0, array, &data, &size);
    assert (rc == -1);
    json_decref (array);
    json_decref (args);
    if (verbose)
        printf ("OK\n");
    return 0;
}

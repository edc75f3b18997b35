/*  ring_cmd: codec for ring commands (protocol/ring-commands.md), the data
    of every RAFT_COMMAND entry a homeserver ring replicates. */

#ifndef RING_CMD_H_INCLUDED
#define RING_CMD_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RING_CMD_VERSION 1
#define RING_CMD_HEADER 45
#define RING_CMD_MAX_OP 64
#define RING_CMD_MAX_ARGS 65536

//  A decoded command. OP and ARGS are owned by the struct.
typedef struct {
    bool admin;              //  principal was an admin when accepted
    uint64_t time_ms;        //  leader's wall clock
    uint8_t principal [32];  //  requester's public key
    char op [RING_CMD_MAX_OP + 1];
    json_t *args;  //  arguments object (a new reference)
} ring_cmd_t;

//  Encode a command into a new malloc'd buffer *DATA of *SIZE bytes.
//  PRINCIPAL is the Z85 public key. Returns 0, or -1 if a field is out of
//  bounds (bad key, op, or arguments too large).
int ring_cmd_encode (const char *op, const char *principal, bool admin,
                     uint64_t time_ms, const json_t *args, uint8_t **data,
                     size_t *size);

//  Decode DATA of SIZE bytes into SELF. Returns 0, or -1 if malformed (then
//  SELF holds nothing).
int ring_cmd_decode (ring_cmd_t *self, const uint8_t *data, size_t size);

//  The op name of command DATA into OP (RING_CMD_MAX_OP + 1 bytes) without
//  decoding the arguments. Returns 0, or -1 if the header is malformed.
int ring_cmd_peek_op (const uint8_t *data, size_t size, char *op);

//  Release what a successful decode holds.
void ring_cmd_release (ring_cmd_t *self);

//  The principal as Z85 text into KEY (41 bytes).
void ring_cmd_principal (const ring_cmd_t *self, char *key);

//  Self test; returns 0 on success.
int ring_cmd_test (bool verbose);

#endif

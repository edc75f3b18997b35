/*  api_msg: codec for the JSON API envelope (protocol/homeserver-api.md).

    Decodes one request frame into its op, id and arguments, and builds
    replies. Shared by the homeserver and simulation server APIs and by
    their clients (fabricctl). Everything decoded comes from the network:
    nothing here asserts on it. */

#ifndef API_MSG_H_INCLUDED
#define API_MSG_H_INCLUDED

#include "common/sf_error.h"

#include <jansson.h>

//  Largest request accepted, in bytes.
#define API_MSG_MAX_REQUEST 65536
//  Longest op name and string id, in bytes.
#define API_MSG_MAX_OP 64
#define API_MSG_MAX_ID 128

//  A decoded request. Fields are lent from ROOT.
typedef struct {
    json_t *root;    //  the request object, owned; NULL when empty
    json_t *id;      //  the request id, or NULL if it could not be read
    const char *op;  //  operation name, or NULL
} api_msg_t;

//  Decode request DATA of SIZE bytes into SELF (which must be empty or
//  reset). Returns 0, or -1 with FAULT set; on failure SELF->id is still set
//  when an id could be read, so the error reply can echo it.
int api_msg_decode (api_msg_t *self, const void *data, size_t size,
                    sf_fault_t *fault);

//  Release what SELF holds and empty it.
void api_msg_reset (api_msg_t *self);

//  True if NAME is a well-formed op name.
bool api_msg_op_valid (const char *name);

//  New success reply {"id": ID, "ok": true}; ID may be NULL (-> null).
//  Caller adds result members and owns the reference.
json_t *api_msg_reply_ok (json_t *id);

//  New error reply for ERROR with MESSAGE (or the default message).
json_t *api_msg_reply_error (json_t *id, sf_error_t error, const char *message);

//  Compact text of REPLY. Caller frees.
char *api_msg_encode (const json_t *reply);

//  Decode a reply (client side). Returns the reply object (caller
//  decrefs), or NULL with FAULT set if it is not a well-formed reply. A
//  well-formed error reply is returned too: check "ok".
json_t *api_msg_decode_reply (const void *data, size_t size, sf_fault_t *fault);

//  From an error reply, the error it carries: sets FAULT and returns -1;
//  from a success reply returns 0.
int api_msg_reply_fault (const json_t *reply, sf_fault_t *fault);

//  The error of CODE (may be NULL) and MESSAGE (may be NULL) as the API
//  states it, into FAULT; a code this version does not know is an internal
//  error whose message names it. Returns -1.
int api_msg_code_fault (const char *code, const char *message,
                        sf_fault_t *fault);

//  Handler of one op: reads REQUEST's arguments, adds its result members to
//  REPLY (a success reply already holding "id" and "ok"). Returns 0, or -1
//  with FAULT set (the reply is then discarded for an error reply).
typedef int (api_msg_handler_fn) (void *context, const api_msg_t *request,
                                  const char *principal, json_t *reply,
                                  sf_fault_t *fault);

//  One entry of an op table; a table ends with a NULL op.
typedef struct {
    const char *op;               //  "status"
    api_msg_handler_fn *handler;  //  its handler
} api_msg_op_t;

//  Serve one request: decode DATA, find its op in OPS, run the handler with
//  CONTEXT and PRINCIPAL, and return the reply text (caller frees). Sets
//  *ERROR (if not NULL) to the error the reply carries, SF_OK on success.
char *api_msg_serve (const api_msg_op_t *ops, void *context, const void *data,
                     size_t size, const char *principal, sf_error_t *error);

//  Self test; returns 0 on success.
int api_msg_test (bool verbose);

#endif

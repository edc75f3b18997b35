/*  sf_error: the stable error codes of every simfabric API.

    One X-macro table gives the C enum, the wire string and the default
    message, so the three cannot drift. Wire strings are part of the public
    API (protocol/homeserver-api.md): never rename one, only add. */

#ifndef SF_ERROR_H_INCLUDED
#define SF_ERROR_H_INCLUDED

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

//  X (enum, wire code, default message)
#define SF_ERROR_MAP(X)                                                   \
    X (SF_OK, "ok", "no error")                                           \
    X (SF_EMALFORMED, "malformed_json", "request is not a JSON object")   \
    X (SF_EREQUEST, "invalid_request", "request envelope is invalid")     \
    X (SF_ETOOLARGE, "too_large", "request exceeds the size limit")       \
    X (SF_EUNKNOWNOP, "unknown_op", "no such operation")                  \
    X (SF_EINVAL, "invalid_argument", "a field is missing or invalid")    \
    X (SF_EUNAUTHORIZED, "unauthorized", "principal may not do this")     \
    X (SF_ENOTMEMBER, "not_member", "caller is not a member of the ring") \
    X (SF_ENOTFOUND, "not_found", "no such object")                       \
    X (SF_EEXISTS, "already_exists", "object already exists")             \
    X (SF_ECONFLICT, "conflict", "state changed concurrently")            \
    X (SF_ESTALE, "stale_epoch", "epoch is older than the current one")   \
    X (SF_EDENIED, "denied", "the entity's rule denies it")               \
    X (SF_ENOTLEADER, "not_leader", "this node is not the leader")        \
    X (SF_EUNAVAILABLE, "unavailable", "service cannot answer right now") \
    X (SF_ETIMEOUT, "timeout", "operation timed out")                     \
    X (SF_ESTORE, "store_failed", "storage error")                        \
    X (SF_EINTERNAL, "internal", "internal error")

#define SF_ERROR_ENUM(name, code, message) name,
typedef enum { SF_ERROR_MAP (SF_ERROR_ENUM) SF_ERROR_COUNT } sf_error_t;
#undef SF_ERROR_ENUM

//  A domain error with its human message, filled by the callee that failed.
typedef struct {
    sf_error_t error;    //  SF_OK while nothing failed
    char message [256];  //  names the problem; never empty once set
} sf_fault_t;

//  Stable wire code of an error, e.g. "not_leader". Lent, static.
const char *sf_error_code (sf_error_t error);

//  Default message of an error. Lent, static.
const char *sf_error_message (sf_error_t error);

//  Error whose wire code is CODE, or SF_ERROR_COUNT if none.
sf_error_t sf_error_from_code (const char *code);

//  Reset FAULT to SF_OK with an empty message.
void sf_fault_clear (sf_fault_t *fault);

//  Record ERROR with a printf-style message in FAULT (may be NULL).
//  Returns -1 so callers can write `return sf_fault_set (...)`.
int sf_fault_set (sf_fault_t *fault, sf_error_t error, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

//  Self test; returns 0 on success.
int sf_error_test (bool verbose);

#endif

/*  sf_zap: the process's ZAP handler (ZeroMQ RFC 27) for CURVE sockets.

    Each server socket names a ZAP domain; each domain has its own policy:
    admit any client that completes the CURVE handshake, or only listed
    public keys. Whoever is admitted gets its Z85 public key as User-Id, so
    every message it sends carries its principal. Policies change at run
    time (a ring admits a new member's key when the membership commits).

    There can be one ZAP handler per process (libzmq binds it at a fixed
    inproc endpoint); create it before the sockets that use it and destroy
    it after them. */

#ifndef SF_ZAP_H_INCLUDED
#define SF_ZAP_H_INCLUDED

#include "common/sf_error.h"

#include <czmq.h>

//  Start the handler. Returns NULL if one is already running.
zactor_t *sf_zap_new (void);

//  Admit any CURVE client on DOMAIN.
void sf_zap_allow_any (zactor_t *self, const char *domain);

//  Admit the client with public key KEY (Z85) on DOMAIN.
void sf_zap_allow (zactor_t *self, const char *domain, const char *key);

//  Stop admitting KEY on DOMAIN; its open sessions stay open.
void sf_zap_revoke (zactor_t *self, const char *domain, const char *key);

//  Handshakes refused since the handler started. A refusal is logged at
//  info level once per client key and domain a minute, and at most 60
//  refusal lines a minute in all; repeats are counted into later lines.
uint64_t sf_zap_refused (zactor_t *self);

//  Admit every public certificate in folder DIR on DOMAIN. Returns the
//  number of keys admitted, or -1 with FAULT set if DIR cannot be read.
int sf_zap_allow_dir (zactor_t *self, const char *domain, const char *dir,
                      sf_fault_t *fault);

//  Self test; returns 0 on success.
int sf_zap_test (bool verbose);

#endif

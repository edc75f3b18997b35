/*  sf_cert: CurveZMQ key pairs on disk.

    A pair is two zcert files: NAME.cert holds the public key and may be
    handed to anyone; NAME.cert_secret holds both keys, is created with mode
    0600, and is refused on load if anyone but its owner can read it. A
    public .cert given where a secret one belongs is named as such. */

#ifndef SF_CERT_H_INCLUDED
#define SF_CERT_H_INCLUDED

#include "common/sf_error.h"

#include <czmq.h>

//  Length of a Z85-encoded CURVE key, without the terminating null.
#define SF_CERT_KEY_TEXT 40

//  Write a new key pair DIR/NAME.cert and DIR/NAME.cert_secret. Refuses to
//  replace existing files unless FORCE. Returns 0, or -1 with FAULT set.
int sf_cert_keygen (const char *dir, const char *name, bool force,
                    sf_fault_t *fault);

//  Load a secret certificate from PATH. Refuses a file that its group or
//  others can read, or that holds no secret key. Caller destroys the cert.
zcert_t *sf_cert_load_secret (const char *path, sf_fault_t *fault);

//  Read a public key from WHERE, either a certificate file (public or
//  secret) or a 40-character Z85 key, into KEY (41 bytes, Z85 text).
//  Returns 0, or -1 with FAULT set.
int sf_cert_load_public (const char *where, char *key, sf_fault_t *fault);

//  True if TEXT is a well-formed Z85 CURVE key.
bool sf_cert_key_valid (const char *text);

//  Self test; returns 0 on success.
int sf_cert_test (bool verbose);

#endif

/*  sf_json: JSON helpers on jansson for the request handlers.

    Field readers check presence and type and fill an sf_fault_t whose
    message names the field, so every handler reports bad input the same
    way ("field 'path' must be a string"). */

#ifndef SF_JSON_H_INCLUDED
#define SF_JSON_H_INCLUDED

#include "common/sf_error.h"

#include <jansson.h>
#include <stdint.h>

//  Parse DATA (SIZE bytes, not null-terminated) as one JSON value.
//  Returns a new reference, or NULL with FAULT set to SF_EMALFORMED and the
//  parser's position and reason.
json_t *sf_json_parse (const void *data, size_t size, sf_fault_t *fault);

//  Compact text of VALUE with keys in insertion order. Caller frees.
char *sf_json_text (const json_t *value);

//  Read string field KEY of OBJECT into *VALUE (lent). A missing field is
//  an error if REQUIRED, else *VALUE is left alone. Returns 0 or -1.
int sf_json_string (const json_t *object, const char *key, bool required,
                    const char **value, sf_fault_t *fault);

//  Read integer field KEY within [MIN, MAX] into *VALUE.
int sf_json_int (const json_t *object, const char *key, bool required,
                 int64_t min, int64_t max, int64_t *value, sf_fault_t *fault);

//  Read boolean field KEY into *VALUE.
int sf_json_bool (const json_t *object, const char *key, bool required,
                  bool *value, sf_fault_t *fault);

//  Read object field KEY into *VALUE (lent).
int sf_json_object (const json_t *object, const char *key, bool required,
                    json_t **value, sf_fault_t *fault);

//  Fail with SF_EINVAL naming the first field of OBJECT that is not in
//  the null-terminated list ALLOWED. Returns 0 or -1.
int sf_json_only (const json_t *object, const char *const *allowed,
                  sf_fault_t *fault);

//  Self test; returns 0 on success.
int sf_json_test (bool verbose);

#endif

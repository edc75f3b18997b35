/*  sf_config: daemon and tool configuration.

    A program describes its keys in a schema table; values come from the
    schema's defaults, then a ZPL file (the format CZMQ's zconfig reads),
    then command-line flags, each overriding the one before. Unknown keys,
    missing required keys and malformed values are errors that name the key
    and where it came from (the file, or the flag).

    A key path is "section/name". A "*" segment in a schema path matches any
    one name, for repeated sections such as ring members. */

#ifndef SF_CONFIG_H_INCLUDED
#define SF_CONFIG_H_INCLUDED

#include "common/sf_error.h"

#include <czmq.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    SF_CONFIG_STRING,    //  any text
    SF_CONFIG_INT,       //  decimal integer; domain "MIN..MAX"
    SF_CONFIG_BOOL,      //  true|false|yes|no|on|off|1|0
    SF_CONFIG_CHOICE,    //  one of domain "a|b|c"
    SF_CONFIG_ENDPOINT,  //  ZeroMQ endpoint; domain lists schemes "tcp|ipc"
    SF_CONFIG_PATH,      //  file path; relative ones resolve against the
                         //  config file's folder when set in the file
    SF_CONFIG_KEY,       //  a public key: 40 characters of Z85 as they
                         //  are, else a .cert file's path (as PATH)
} sf_config_type_t;

//  One key of a schema. A schema is an array ended by an entry whose path
//  is NULL.
typedef struct {
    const char *path;  //  "homeserver/api"
    const char *flag;  //  flag name without "--", or NULL for none
    sf_config_type_t type;
    bool required;         //  must be set by the file or a flag
    const char *fallback;  //  default value when not set, or NULL
    const char *domain;    //  see sf_config_type_t, or NULL
    const char *help;      //  one line for --help
} sf_config_key_t;

typedef struct _sf_config_t sf_config_t;

//  New configuration over SCHEMA (lent; must outlive the object).
sf_config_t *sf_config_new (const sf_config_key_t *schema);

//  Destroy the configuration and null the caller's pointer.
void sf_config_destroy (sf_config_t **self_p);

//  Load a ZPL file. Returns 0, or -1 with FAULT naming the file, and the key
//  or line that is wrong. Values already set by flags are kept.
int sf_config_load (sf_config_t *self, const char *filename, sf_fault_t *fault);

//  Parse command-line arguments (ARGV [1..ARGC-1]): "--config FILE" (or
//  "-c FILE") loads a file first, then every "--FLAG VALUE" or
//  "--FLAG=VALUE" overrides it. A bool flag alone means true, and takes a
//  value only after '=' ("--json=false"; --help shows "--json[=BOOL]"):
//  "--json false" is refused with that advice. Other words are kept as
//  positional arguments; "--" ends the flags. Returns 0, or -1 with FAULT
//  set.
int sf_config_parse_args (sf_config_t *self, int argc, char **argv,
                          sf_fault_t *fault);

//  Set PATH to VALUE as if from ORIGIN (e.g. "flag --api"), validating the
//  value against the schema. Returns 0, or -1 with FAULT set.
int sf_config_set (sf_config_t *self, const char *path, const char *value,
                   const char *origin, sf_fault_t *fault);

//  Check that every required key is set. Returns 0, or -1 with FAULT
//  naming the first missing key.
int sf_config_check (sf_config_t *self, sf_fault_t *fault);

//  Value of PATH, its default, or NULL. Lent; valid until the key changes.
const char *sf_config_str (sf_config_t *self, const char *path);

//  Value of integer key PATH (already validated), or 0 if unset.
int64_t sf_config_int (sf_config_t *self, const char *path);

//  Value of bool key PATH (already validated), or false if unset.
bool sf_config_bool (sf_config_t *self, const char *path);

//  True if PATH was set by the file or a flag (defaults do not count).
bool sf_config_has (sf_config_t *self, const char *path);

//  Names that match the "*" of wildcard section PREFIX ("ring/member"),
//  in file order. Caller destroys the list.
zlist_t *sf_config_names (sf_config_t *self, const char *prefix);

//  Positional arguments from sf_config_parse_args, in order. Lent.
zlist_t *sf_config_positional (sf_config_t *self);

//  Name of the loaded file, or NULL. Lent.
const char *sf_config_filename (sf_config_t *self);

//  Print one line per flag of SCHEMA for --help.
void sf_config_print_flags (const sf_config_key_t *schema, FILE *stream);

//  Check ENDPOINT against the schemes in SCHEMES ("tcp|ipc|udp|inproc").
//  Returns 0, or -1 with REASON (>= 128 bytes) saying what is wrong.
int sf_config_check_endpoint (const char *endpoint, const char *schemes,
                              char *reason, size_t reason_size);

//  Self test; returns 0 on success.
int sf_config_test (bool verbose);

#endif

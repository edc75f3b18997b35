/*  sf_name: the grammar of names (players, sims) and entity paths, shared
    by the ring, the simulation servers and the state-datagram codec so that
    every component accepts exactly the same set. */

#ifndef SF_NAME_H_INCLUDED
#define SF_NAME_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  Longest entity path, in bytes.
#define SF_NAME_MAX_PATH 256

//  True if NAME (NUL-terminated) is 1..64 letters, digits, '_', '-', '.'.
bool sf_name_valid (const char *name);

//  Longest instance name, in bytes.
#define SF_NAME_MAX_INSTANCE 32

//  True if NAME is an instance name (federation.md section 1): 1..32 of
//  'a'-'z', '0'-'9' and '-'.
bool sf_name_instance_valid (const char *name);

//  Split NAME, "LOCAL" or "LOCAL@INSTANCE" (a global name), into LOCAL
//  (65 bytes) and INSTANCE (SF_NAME_MAX_INSTANCE + 1 bytes; "" if NAME
//  names none). Returns true if LOCAL is a name and INSTANCE, if any, an
//  instance name; else false, with both empty.
bool sf_name_split (const char *name, char *local, char *instance);

//  True if the SIZE bytes at PATH (no terminator needed) are an entity
//  path: '/' then segments of 1..64 letters, digits, '_', '-', '.', ':'
//  joined by '/', no trailing '/', at most SF_NAME_MAX_PATH bytes.
bool sf_name_path_valid (const char *path, size_t size);

//  True if the SIZE bytes at PATH are an entity path, or one followed by
//  '@' and an instance name: a path of another instance's entity as its
//  sims call it (federation.md section 5, "PATH@INSTANCE").
bool sf_name_global_path_valid (const char *path, size_t size);

//  True if PATH matches PATTERN segment by segment: "*" matches exactly one
//  segment, "**" (only as the last segment) one or more, anything else
//  itself.
bool sf_name_path_match (const char *pattern, const char *path);

//  Self test; returns 0 on success.
int sf_name_test (bool verbose);

#endif

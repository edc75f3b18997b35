/*  ctl_scene: a scene file (protocol/scene.md) read and cut into the
    batches fabricctl import sends, each within the API's request size.
    Pure: no sockets, so it is tested on scenes built in memory. */

#ifndef CTL_SCENE_H_INCLUDED
#define CTL_SCENE_H_INCLUDED

#include "common/sf_error.h"

#include <jansson.h>
#include <stdbool.h>

//  The scene in the SIZE bytes at TEXT, named NAME in messages. Returns its
//  entities array (caller owns it), or NULL with FAULT.
json_t *ctl_scene_parse (const char *text, size_t size, const char *name,
                         sf_fault_t *fault);

//  Read the scene at PATH. Returns its entities array (caller owns it), or
//  NULL with FAULT naming the file and what is wrong with it.
json_t *ctl_scene_load (const char *path, sf_fault_t *fault);

//  Cut ENTITIES (lent) into batches of at most MAX_COUNT entities whose
//  entity.import request stays under MAX_BYTES; an entity too large for
//  any batch goes alone (the daemon then says why it refuses it). Returns
//  an array of arrays, in order (caller owns it).
json_t *ctl_scene_batches (const json_t *entities, size_t max_count,
                           size_t max_bytes);

//  The longest path prefix, ending with '/', shared by every entity of
//  ENTITIES (at least "/"). Caller frees.
char *ctl_scene_prefix (const json_t *entities);

//  Self test; returns 0 on success.
int ctl_scene_test (bool verbose);

#endif

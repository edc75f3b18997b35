/*  ctl_scene: scene files for fabricctl import. */

#include "ctl/ctl_scene.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Bytes an import request adds around its entities.
#define S_ENVELOPE 128

//  The entities of SCENE (taken), checked, or NULL with FAULT.
static json_t *s_entities (json_t *scene, const char *path, sf_fault_t *fault);

json_t *
ctl_scene_load (const char *path, sf_fault_t *fault)
{
    json_error_t error;
    json_t *scene = json_load_file (path, 0, &error);
    if (!scene) {
        sf_fault_set (fault, SF_EINVAL, "scene %s: line %d: %s", path,
                      error.line, error.text);
        return NULL;
    }
    return s_entities (scene, path, fault);
}

json_t *
ctl_scene_parse (const char *text, size_t size, const char *name,
                 sf_fault_t *fault)
{
    json_error_t error;
    json_t *scene = json_loadb (text, size, 0, &error);
    if (!scene) {
        sf_fault_set (fault, SF_EINVAL, "scene %s: line %d: %s", name,
                      error.line, error.text);
        return NULL;
    }
    return s_entities (scene, name, fault);
}

static json_t *
s_entities (json_t *scene, const char *path, sf_fault_t *fault)
{
    json_t *entities = json_object_get (scene, "entities");
    if (!json_is_array (entities) || json_array_size (entities) == 0) {
        sf_fault_set (fault, SF_EINVAL,
                      "scene %s: no \"entities\" array (scene.md)", path);
        json_decref (scene);
        return NULL;
    }
    size_t index;
    json_t *entity;
    json_array_foreach (entities, index, entity)
    {
        if (!json_is_string (json_object_get (entity, "path"))) {
            sf_fault_set (fault, SF_EINVAL,
                          "scene %s: entities[%zu] has no \"path\" string",
                          path, index);
            json_decref (scene);
            return NULL;
        }
    }
    json_incref (entities);
    json_decref (scene);
    return entities;
}

json_t *
ctl_scene_batches (const json_t *entities, size_t max_count, size_t max_bytes)
{
    json_t *batches = json_array ();
    json_t *batch = json_array ();
    size_t bytes = S_ENVELOPE;
    size_t index;
    json_t *entity;
    json_array_foreach (entities, index, entity)
    {
        char *text = json_dumps (entity, JSON_COMPACT);
        size_t size = text ? strlen (text) + 1 : 0;
        free (text);
        if (json_array_size (batch)
            && (json_array_size (batch) == max_count
                || bytes + size > max_bytes)) {
            json_array_append_new (batches, batch);
            batch = json_array ();
            bytes = S_ENVELOPE;
        }
        json_array_append (batch, entity);
        bytes += size;
    }
    if (json_array_size (batch))
        json_array_append_new (batches, batch);
    else
        json_decref (batch);
    return batches;
}

char *
ctl_scene_prefix (const json_t *entities)
{
    const char *first = json_string_value (
        json_object_get (json_array_get (entities, 0), "path"));
    if (!first || first [0] != '/')
        return strdup ("/");
    size_t shared = strlen (first);
    size_t index;
    json_t *entity;
    json_array_foreach (entities, index, entity)
    {
        const char *path = json_string_value (json_object_get (entity, "path"));
        size_t at = 0;
        while (at < shared && path && path [at] && path [at] == first [at])
            at++;
        shared = at;
    }
    //  Back to the last whole segment.
    while (shared > 1 && first [shared - 1] != '/')
        shared--;
    if (shared < 1)
        shared = 1;
    char *prefix = (char *) malloc (shared + 1);
    memcpy (prefix, first, shared);
    prefix [shared] = 0;
    return prefix;
}

static json_t *
s_entity (const char *path, size_t state_size)
{
    char *state = (char *) malloc (state_size + 1);
    memset (state, 'x', state_size);
    state [state_size] = 0;
    json_t *entity = json_pack ("{s:s,s:s}", "path", path, "state", state);
    free (state);
    return entity;
}

int
ctl_scene_test (bool verbose)
{
    if (verbose)
        printf (" * ctl_scene: ");
    json_t *entities = json_array ();
    char path [64];
    for (int at = 0; at < 1000; at++) {
        snprintf (path, sizeof path, "/world/room%d/e%d", at % 7, at);
        json_array_append_new (entities, s_entity (path, 50));
    }
    //  By count.
    json_t *batches = ctl_scene_batches (entities, 300, 1 << 20);
    assert (json_array_size (batches) == 4);
    assert (json_array_size (json_array_get (batches, 3)) == 100);
    json_decref (batches);
    //  By bytes: every batch within the limit, all entities, in order.
    batches = ctl_scene_batches (entities, 1000, 8192);
    size_t seen = 0;
    size_t index;
    json_t *batch;
    json_array_foreach (batches, index, batch)
    {
        json_t *request = json_pack ("{s:s,s:I,s:O}", "op", "entity.import",
                                     "id", (json_int_t) 1, "entities", batch);
        char *text = json_dumps (request, JSON_COMPACT);
        assert (strlen (text) <= 8192);
        free (text);
        json_decref (request);
        size_t at;
        json_t *entity;
        json_array_foreach (batch, at, entity)
        {
            assert (json_array_get (entities, seen) == entity);
            seen++;
        }
    }
    assert (seen == 1000);
    json_decref (batches);
    //  An entity larger than a batch goes alone.
    json_t *big = json_array ();
    json_array_append_new (big, s_entity ("/a", 10));
    json_array_append_new (big, s_entity ("/b", 20000));
    json_array_append_new (big, s_entity ("/c", 10));
    batches = ctl_scene_batches (big, 1000, 8192);
    assert (json_array_size (batches) == 3);
    json_decref (batches);

    char *prefix = ctl_scene_prefix (entities);
    assert (strcmp (prefix, "/world/") == 0);
    free (prefix);
    prefix = ctl_scene_prefix (big);
    assert (strcmp (prefix, "/") == 0);
    free (prefix);
    json_t *one = json_array ();
    json_array_append_new (one, s_entity ("/world/room1/e1", 1));
    json_array_append_new (one, s_entity ("/world/room1/e10", 1));
    prefix = ctl_scene_prefix (one);
    assert (strcmp (prefix, "/world/room1/") == 0);
    free (prefix);
    json_decref (one);
    json_decref (big);
    json_decref (entities);
    //  Text that is not a scene is refused with the reason.
    const char *bad [] = {"",
                          "[1]",
                          "{\"entities\": 3}",
                          "{\"entities\": []}",
                          "{\"entities\": [{\"path\": 1}]}",
                          NULL};
    for (const char **text = bad; *text; text++) {
        sf_fault_t fault;
        sf_fault_clear (&fault);
        json_t *refused = ctl_scene_parse (*text, strlen (*text), "t", &fault);
        assert (!refused);
        assert (fault.error == SF_EINVAL && strstr (fault.message, "scene t"));
    }
    const char *good = "{\"entities\": [{\"path\": \"/a\"}]}";
    sf_fault_t fault;
    json_t *parsed = ctl_scene_parse (good, strlen (good), "t", &fault);
    assert (parsed && json_array_size (parsed) == 1);
    json_decref (parsed);
    if (verbose)
        printf ("OK\n");
    return 0;
}

/*  fuzz_scene: libFuzzer target for the scene reader (protocol/scene.md)
    and the batching fabricctl import does with what it reads: every entity
    lands in exactly one batch, in order. */

#include "ctl/ctl_scene.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    sf_fault_t fault;
    json_t *entities =
        ctl_scene_parse ((const char *) data, size, "fuzz", &fault);
    if (!entities)
        return 0;
    json_t *batches = ctl_scene_batches (entities, 7, 512);
    size_t seen = 0, index;
    json_t *batch;
    json_array_foreach (batches, index, batch)
    {
        size_t at;
        json_t *entity;
        json_array_foreach (
            batch, at, entity) if (json_array_get (entities, seen++) != entity)
            abort ();
    }
    if (seen != json_array_size (entities))
        abort ();
    free (ctl_scene_prefix (entities));
    json_decref (batches);
    json_decref (entities);
    return 0;
}

/*  hs_backup: a member's online backups (operations.md section 2).

    backup.begin hands it the state machine's image, taken at one
    applied index as a snapshot is; a thread of its own writes the image
    into a file of its folder, hashing as it goes, and syncs it (so the
    loop never waits for the disk), and the loop answers the call once
    the file is whole. backup.read serves the file
    in pieces; backup.end deletes it. A backup nobody ended is deleted
    after S_BACKUP_KEEP_MS, and a member keeps at most two. */

#ifndef HS_BACKUP_H_INCLUDED
#define HS_BACKUP_H_INCLUDED

#include "protocol/api_router.h"

#include <raft.h>

typedef struct _hs_backup_t hs_backup_t;

//  Most bytes one backup.read answers.
#define HS_BACKUP_READ_MAX 49152

//  Backups in FOLDER (created if missing), answered through ROUTER
//  (lent). NULL with FAULT.
hs_backup_t *hs_backup_new (const char *folder, api_router_t *router,
                            sf_fault_t *fault);

//  Destroy, answering a backup being written unavailable.
void hs_backup_destroy (hs_backup_t **self_p);

//  backup.begin: write IMAGE (taken), the state at applied INDEX, and
//  answer *CALL_P (taken) once written: {"backup", "index", "bytes",
//  "sha256"}. Returns 0, or -1 with FAULT (conflict: another is being
//  written) and the call left to the caller.
int hs_backup_begin (hs_backup_t *self, api_call_t **call_p,
                     struct raft_buffer *image, uint64_t index,
                     sf_fault_t *fault);

//  See whether the backup being written is done (then keep it and answer
//  its call), NOW_MS the wall clock. Returns true while it is not.
bool hs_backup_turn (hs_backup_t *self, uint64_t now_ms);

//  backup.read {"backup", "offset", "length"?} and backup.end
//  {"backup"}: answer *CALL_P (taken).
void hs_backup_read (hs_backup_t *self, api_call_t **call_p,
                     const json_t *args);
void hs_backup_end (hs_backup_t *self, api_call_t **call_p, const json_t *args);

//  Self test; returns 0 on success.
int hs_backup_test (bool verbose);

#endif

/*  hs_backup: a member's online backups. */

#include "broker/hs_backup.h"
#include "common/sf_time.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sodium.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

//  Bytes written per write call.
#define S_PIECE (4 * 1024 * 1024)
//  How long a backup nobody ended is kept, and how many are.
#define S_BACKUP_KEEP_MS (10 * 60 * 1000)
#define S_BACKUP_MAX 2

typedef struct {
    char id [17];
    char *path;
    uint64_t index;
    uint64_t bytes;
    char sha256 [65];
    uint64_t made_ms;
} s_done_t;

struct _hs_backup_t {
    char *folder;
    api_router_t *router;  //  lent
    //  The backup being written, if IMAGE.base: by a thread of its own,
    //  so the loop never waits for the disk (a sync under a write load
    //  took long enough for a follower to miss its leader's heartbeats).
    api_call_t *call;
    struct raft_buffer image;
    int fd;
    char id [17];
    char *part;  //  its file until whole
    uint64_t index;
    pthread_t writer;
    atomic_bool written;  //  the writer is done: join it
    int error;            //  its errno, or 0
    char sha256 [65];     //  its hash of the image
    zlistx_t *done;       //  s_done_t, oldest first
};

static void
s_done_destroy (void **item)
{
    s_done_t *done = (s_done_t *) *item;
    unlink (done->path);
    free (done->path);
    free (done);
    *item = NULL;
}

hs_backup_t *
hs_backup_new (const char *folder, api_router_t *router, sf_fault_t *fault)
{
    if (zsys_dir_create ("%s", folder)) {
        sf_fault_set (fault, SF_ESTORE, "cannot create %s", folder);
        return NULL;
    }
    hs_backup_t *self = (hs_backup_t *) zmalloc (sizeof (hs_backup_t));
    atomic_init (&self->written, false);
    self->folder = strdup (folder);
    self->router = router;
    self->fd = -1;
    self->done = zlistx_new ();
    zlistx_set_destructor (self->done, s_done_destroy);
    return self;
}

//  Give up the backup being written: its file goes, its caller hears
//  ERROR with MESSAGE.
static void
s_abandon (hs_backup_t *self, sf_error_t error, const char *message)
{
    if (self->fd >= 0)
        close (self->fd);
    self->fd = -1;
    if (self->part)
        unlink (self->part);
    free (self->part);
    self->part = NULL;
    raft_free (self->image.base);
    self->image.base = NULL;
    api_router_fail (self->router, &self->call, error, message);
}

void
hs_backup_destroy (hs_backup_t **self_p)
{
    if (*self_p) {
        hs_backup_t *self = *self_p;
        if (self->image.base) {
            pthread_join (self->writer, NULL);
            s_abandon (self, SF_EUNAVAILABLE, "the member stopped");
        }
        zlistx_destroy (&self->done);
        free (self->folder);
        free (self);
        *self_p = NULL;
    }
}

//  Backups past their time, and past the most kept, go.
static void
s_expire (hs_backup_t *self, uint64_t now_ms)
{
    s_done_t *done;
    while ((done = (s_done_t *) zlistx_first (self->done))
           && (zlistx_size (self->done) > S_BACKUP_MAX
               || done->made_ms + S_BACKUP_KEEP_MS < now_ms))
        zlistx_delete (self->done, zlistx_cursor (self->done));
}

//  The writer: the image into the file, whole and synced, and its hash.
static void *
s_write (void *arg)
{
    hs_backup_t *self = (hs_backup_t *) arg;
    //  Behind the loop for the CPU: on a busy member the loop's heartbeats
    //  and acknowledgements matter more than the backup's pace.
    setpriority (PRIO_PROCESS, (id_t) syscall (SYS_gettid), 10);
    crypto_hash_sha256_state hash;
    crypto_hash_sha256_init (&hash);
    const uint8_t *image = (const uint8_t *) self->image.base;
    for (size_t at = 0; at < self->image.len && !self->error;) {
        size_t piece =
            self->image.len - at < S_PIECE ? self->image.len - at : S_PIECE;
        ssize_t wrote = write (self->fd, image + at, piece);
        if (wrote < 0 && errno == EINTR)
            continue;
        if (wrote <= 0)
            self->error = wrote < 0 ? errno : EIO;
        else {
            crypto_hash_sha256_update (&hash, image + at, (size_t) wrote);
            at += (size_t) wrote;
        }
    }
    if (!self->error && fsync (self->fd))
        self->error = errno;
    uint8_t digest [crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final (&hash, digest);
    sodium_bin2hex (self->sha256, sizeof self->sha256, digest, sizeof digest);
    atomic_store (&self->written, true);
    return NULL;
}

int
hs_backup_begin (hs_backup_t *self, api_call_t **call_p,
                 struct raft_buffer *image, uint64_t index, sf_fault_t *fault)
{
    if (self->image.base) {
        raft_free (image->base);
        image->base = NULL;
        return sf_fault_set (fault, SF_ECONFLICT,
                             "a backup is being written on this member; wait "
                             "for it, or ask another member");
    }
    uint8_t raw [8];
    randombytes_buf (raw, sizeof raw);
    sodium_bin2hex (self->id, sizeof self->id, raw, sizeof raw);
    self->part = zsys_sprintf ("%s/%s.db.part", self->folder, self->id);
    self->fd = open (self->part, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (self->fd < 0) {
        sf_fault_set (fault, SF_ESTORE, "cannot create %s: %s", self->part,
                      strerror (errno));
        free (self->part);
        self->part = NULL;
        raft_free (image->base);
        image->base = NULL;
        return -1;
    }
    self->image = *image;
    image->base = NULL;
    self->index = index;
    self->error = 0;
    atomic_store (&self->written, false);
    if (pthread_create (&self->writer, NULL, s_write, self)) {
        s_abandon (self, SF_EINTERNAL, "cannot start the backup's writer");
        return sf_fault_set (fault, SF_EINTERNAL,
                             "cannot start the backup's writer");
    }
    self->call = *call_p;
    *call_p = NULL;
    return 0;
}

bool
hs_backup_turn (hs_backup_t *self, uint64_t now_ms)
{
    s_expire (self, now_ms);
    if (!self->image.base)
        return false;
    if (!atomic_load (&self->written))
        return true;
    pthread_join (self->writer, NULL);
    if (self->error) {
        char message [300];
        snprintf (message, sizeof message, "cannot write %s: %s", self->part,
                  strerror (self->error));
        s_abandon (self, SF_ESTORE, message);
        return false;
    }
    //  Whole and synced: kept under its name, then answered.
    s_done_t *done = (s_done_t *) zmalloc (sizeof (s_done_t));
    memcpy (done->id, self->id, sizeof done->id);
    done->path = zsys_sprintf ("%s/%s.db", self->folder, self->id);
    done->index = self->index;
    done->bytes = self->image.len;
    done->made_ms = now_ms;
    memcpy (done->sha256, self->sha256, sizeof done->sha256);
    if (rename (self->part, done->path)) {
        char message [300];
        snprintf (message, sizeof message, "cannot keep %s: %s", done->path,
                  strerror (errno));
        free (done->path);
        free (done);
        s_abandon (self, SF_ESTORE, message);
        return false;
    }
    close (self->fd);
    self->fd = -1;
    free (self->part);
    self->part = NULL;
    raft_free (self->image.base);
    self->image.base = NULL;
    zlistx_add_end (self->done, done);
    json_t *result =
        json_pack ("{s:s,s:I,s:I,s:s}", "backup", done->id, "index",
                   (json_int_t) done->index, "bytes", (json_int_t) done->bytes,
                   "sha256", done->sha256);
    api_router_reply (self->router, &self->call, result);
    json_decref (result);
    s_expire (self, now_ms);
    return false;
}

static s_done_t *
s_find (hs_backup_t *self, const char *id)
{
    for (s_done_t *done = (s_done_t *) zlistx_first (self->done); done;
         done = (s_done_t *) zlistx_next (self->done))
        if (id && streq (done->id, id))
            return done;
    return NULL;
}

void
hs_backup_read (hs_backup_t *self, api_call_t **call_p, const json_t *args)
{
    const char *id = json_string_value (json_object_get (args, "backup"));
    s_done_t *done = s_find (self, id);
    if (!done) {
        api_router_fail (self->router, call_p, SF_ENOTFOUND,
                         "no such backup on this member (ended, expired "
                         "after 10 minutes, or made elsewhere)");
        return;
    }
    uint64_t offset =
        (uint64_t) json_integer_value (json_object_get (args, "offset"));
    json_t *length_value = json_object_get (args, "length");
    size_t length = length_value ? (size_t) json_integer_value (length_value)
                                 : HS_BACKUP_READ_MAX;
    if (offset > done->bytes) {
        api_router_fail (self->router, call_p, SF_EINVAL,
                         "offset is past the backup's end");
        return;
    }
    if (length > done->bytes - offset)
        length = (size_t) (done->bytes - offset);
    uint8_t *data = (uint8_t *) zmalloc (length + 1);
    int fd = open (done->path, O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? pread (fd, data, length, (off_t) offset) : -1;
    if (fd >= 0)
        close (fd);
    if (got != (ssize_t) length) {
        free (data);
        api_router_fail (self->router, call_p, SF_ESTORE,
                         "cannot read the backup's file");
        return;
    }
    size_t text_size =
        sodium_base64_ENCODED_LEN (length, sodium_base64_VARIANT_ORIGINAL);
    char *text = (char *) zmalloc (text_size);
    sodium_bin2base64 (text, text_size, data, length,
                       sodium_base64_VARIANT_ORIGINAL);
    free (data);
    json_t *result = json_pack ("{s:s,s:I,s:s,s:b}", "backup", done->id,
                                "offset", (json_int_t) offset, "data", text,
                                "done", offset + length == done->bytes);
    free (text);
    api_router_reply (self->router, call_p, result);
    json_decref (result);
}

void
hs_backup_end (hs_backup_t *self, api_call_t **call_p, const json_t *args)
{
    const char *id = json_string_value (json_object_get (args, "backup"));
    s_done_t *done = s_find (self, id);
    if (!done) {
        api_router_fail (self->router, call_p, SF_ENOTFOUND,
                         "no such backup on this member");
        return;
    }
    json_t *result = json_pack ("{s:s,s:b}", "backup", done->id, "ended", 1);
    zlistx_delete (self->done, zlistx_cursor (self->done));
    api_router_reply (self->router, call_p, result);
    json_decref (result);
}

int
hs_backup_test (bool verbose)
{
    if (verbose)
        printf (" * hs_backup: ");
    char folder [] = "/tmp/hs_backup_XXXXXX";
    assert (mkdtemp (folder));
    sf_fault_t fault;
    hs_backup_t *backup = hs_backup_new (folder, NULL, &fault);
    assert (backup);
    //  Ten pieces and a bit, written and hashed whole by the writer.
    size_t size = 10 * S_PIECE + 1234;
    struct raft_buffer image = {.base = raft_malloc (size), .len = size};
    for (size_t at = 0; at < size; at++)
        ((uint8_t *) image.base) [at] = (uint8_t) (at * 7);
    uint8_t expected [crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (expected, image.base, size);
    api_call_t *call = NULL;
    assert (hs_backup_begin (backup, &call, &image, 42, &fault) == 0);
    assert (!image.base);
    //  One at a time.
    struct raft_buffer other = {.base = raft_malloc (8), .len = 8};
    assert (hs_backup_begin (backup, &call, &other, 43, &fault) == -1);
    assert (fault.error == SF_ECONFLICT && !other.base);
    while (hs_backup_turn (backup, 1000))
        usleep (1000);
    s_done_t *done = (s_done_t *) zlistx_first (backup->done);
    assert (done && done->index == 42 && done->bytes == size);
    char hex [65];
    sodium_bin2hex (hex, sizeof hex, expected, sizeof expected);
    assert (streq (done->sha256, hex));
    struct stat info;
    assert (stat (done->path, &info) == 0 && (size_t) info.st_size == size);
    assert ((info.st_mode & 0777) == 0600);
    //  Kept two at most, and ten minutes at most.
    for (uint64_t index = 50; index < 53; index++) {
        struct raft_buffer small = {.base = raft_malloc (16), .len = 16};
        assert (hs_backup_begin (backup, &call, &small, index, &fault) == 0);
        while (hs_backup_turn (backup, 2000))
            usleep (1000);
    }
    assert (zlistx_size (backup->done) == 2);
    assert (((s_done_t *) zlistx_first (backup->done))->index == 51);
    hs_backup_turn (backup, 2000 + S_BACKUP_KEEP_MS + 1);
    assert (zlistx_size (backup->done) == 0);
    hs_backup_destroy (&backup);
    assert (!backup);
    rmdir (folder);
    if (verbose)
        printf ("OK\n");
    return 0;
}

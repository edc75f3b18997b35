/*  sf_log: one line per event, with a level filter, to stderr or a file. */

#include "common/sf_log.h"
#include "common/sf_time.h"

#include <czmq.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *s_level_names [] = {"error", "warning", "notice", "info",
                                       "debug"};

//  Process-wide state, set in main () before any thread starts.
static struct {
    char ident [64];       //  node name printed on every line
    sf_log_level_t level;  //  lines above this level are dropped
    FILE *file;            //  open log file, or NULL for stderr
    char *filename;        //  its name, to reopen it; NULL for stderr
    bool journal;          //  stderr is systemd's journal: no stamp, and
                           //  each line's priority as "<N>"
} s_log = {"simfabric", SF_LOG_INFO, NULL, NULL, false};

//  Whether stderr is the journal's stream (systemd sets JOURNAL_STREAM
//  to its "device:inode"), so a daemon run as a service logs there with
//  priorities rather than to a file.
static bool
s_stderr_is_journal (void)
{
    const char *stream = getenv ("JOURNAL_STREAM");
    unsigned long long device, inode;
    struct stat info;
    if (!stream || sscanf (stream, "%llu:%llu", &device, &inode) != 2
        || fstat (STDERR_FILENO, &info))
        return false;
    return (unsigned long long) info.st_dev == device
           && (unsigned long long) info.st_ino == inode;
}

int
sf_log_level_parse (const char *name)
{
    for (int level = 0; name && level <= SF_LOG_DEBUG; level++)
        if (strcmp (s_level_names [level], name) == 0)
            return level;
    return -1;
}

static FILE *
s_stream (void)
{
    return s_log.file ? s_log.file : stderr;
}

int
sf_log_open (const char *ident, sf_log_level_t level, const char *filename,
             sf_fault_t *fault)
{
    FILE *file = NULL;
    if (filename && *filename) {
        file = fopen (filename, "a");
        if (!file)
            return sf_fault_set (fault, SF_EINVAL,
                                 "cannot open log file %s: %s", filename,
                                 strerror (errno));
        setvbuf (file, NULL, _IOLBF, 0);
    }
    sf_log_close ();
    s_log.file = file;
    s_log.filename = file ? strdup (filename) : NULL;
    s_log.journal = !file && s_stderr_is_journal ();
    s_log.level = level;
    snprintf (s_log.ident, sizeof s_log.ident, "%s", ident ? ident : "");
    zsys_set_logident (s_log.ident);
    zsys_set_logstream (s_stream ());
    zsys_set_logsystem (false);
    return 0;
}

int
sf_log_reopen (sf_fault_t *fault)
{
    if (!s_log.file)
        return 0;
    int fd =
        open (s_log.filename, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        return sf_fault_set (fault, SF_EINVAL, "cannot reopen log file %s: %s",
                             s_log.filename, strerror (errno));
    //  The new file takes the old one's descriptor under the same FILE, so
    //  no thread ever writes to a closed stream (zsys holds it too). Lines
    //  are flushed whole (line buffering), each to one file or the other.
    fflush (s_log.file);
    int rc = dup2 (fd, fileno (s_log.file));
    int saved = errno;
    close (fd);
    if (rc < 0)
        return sf_fault_set (fault, SF_EINVAL, "cannot reopen log file %s: %s",
                             s_log.filename, strerror (saved));
    return 0;
}

void
sf_log_close (void)
{
    if (s_log.file) {
        zsys_set_logstream (stderr);
        fclose (s_log.file);
        s_log.file = NULL;
        free (s_log.filename);
        s_log.filename = NULL;
    }
}

bool
sf_log_enabled (sf_log_level_t level)
{
    return level <= s_log.level;
}

void
sf_log_write (sf_log_level_t level, const char *format, ...)
{
    if (!sf_log_enabled (level))
        return;
    char line [1024];
    int prefix;
    if (s_log.journal)
        //  The journal stamps each line itself; "<3>".."<7>" are syslog's
        //  priorities, error to debug.
        prefix = snprintf (line, sizeof line, "<%d>%s %s: ", 3 + (int) level,
                           s_level_names [level], s_log.ident);
    else {
        char stamp [32];
        sf_time_format_iso (sf_time_wall_ms (), stamp, sizeof stamp);
        prefix = snprintf (line, sizeof line, "%s %s %s: ", stamp,
                           s_level_names [level], s_log.ident);
    }
    va_list args;
    va_start (args, format);
    vsnprintf (line + prefix, sizeof line - (size_t) prefix, format, args);
    va_end (args);
    for (char *cursor = line + prefix; *cursor; cursor++)
        if (*cursor == '\n' || *cursor == '\r')
            *cursor = ' ';
    //  One fprintf per line: stdio's lock keeps lines whole across threads.
    fprintf (s_stream (), "%s\n", line);
}

int
sf_log_test (bool verbose)
{
    if (verbose)
        printf (" * sf_log: ");
    assert (sf_log_level_parse ("debug") == SF_LOG_DEBUG);
    assert (sf_log_level_parse ("error") == SF_LOG_ERROR);
    assert (sf_log_level_parse ("loud") == -1);
    assert (sf_log_level_parse (NULL) == -1);

    char path [] = "/tmp/sf_log_test_XXXXXX";
    int fd = mkstemp (path);
    assert (fd >= 0);
    close (fd);
    sf_fault_t fault;
    int rc = sf_log_open ("node7", SF_LOG_INFO, path, &fault);
    assert (rc == 0);
    sf_log_info ("first %d\nsecond", 1);
    sf_log_debug ("filtered out");
    sf_log_error ("bad thing");
    sf_log_close ();

    FILE *file = fopen (path, "r");
    assert (file);
    char line [256];
    char *got = fgets (line, sizeof line, file);
    assert (got);
    assert (strstr (line, " info node7: first 1 second\n"));
    assert (line [4] == '-' && line [23] == 'Z');
    got = fgets (line, sizeof line, file);
    assert (got);
    assert (strstr (line, " error node7: bad thing\n"));
    got = fgets (line, sizeof line, file);
    assert (!got);
    fclose (file);

    //  Rotation: the file renamed away, reopening starts a new one under
    //  the name, and the old one gets nothing more.
    char rotated [sizeof path + 2];
    snprintf (rotated, sizeof rotated, "%s.1", path);
    rc = sf_log_reopen (&fault);  //  stderr: nothing to do
    assert (rc == 0);
    rc = sf_log_open ("node7", SF_LOG_INFO, path, &fault);
    assert (rc == 0);
    sf_log_info ("before");
    rc = rename (path, rotated);
    assert (rc == 0);
    rc = sf_log_reopen (&fault);
    assert (rc == 0);
    sf_log_info ("after");
    sf_log_close ();
    file = fopen (path, "r");
    assert (file);
    got = fgets (line, sizeof line, file);
    assert (got);
    assert (strstr (line, " info node7: after\n"));
    got = fgets (line, sizeof line, file);
    assert (!got);
    fclose (file);
    file = fopen (rotated, "r");
    assert (file);
    got = fgets (line, sizeof line, file);
    assert (got);
    assert (strstr (line, " info node7: first 1 second\n"));
    got = fgets (line, sizeof line, file);
    assert (got);
    got = fgets (line, sizeof line, file);
    assert (got);
    assert (strstr (line, " info node7: before\n"));
    got = fgets (line, sizeof line, file);
    assert (!got);
    fclose (file);
    unlink (rotated);
    unlink (path);

    rc = sf_log_open ("x", SF_LOG_INFO, "/nonexistent/dir/log", &fault);
    assert (rc == -1);
    assert (strstr (fault.message, "/nonexistent/dir/log"));
    sf_log_open ("selftest", SF_LOG_WARNING, NULL, NULL);
    if (verbose)
        printf ("OK\n");
    return 0;
}

/*  sf_log: one line per event, with a level filter, to stderr or a file.

    Logging is process-wide, like zsys: a daemon opens it once in main ()
    with its node name as identity. Lines look like
        2026-11-23T23:45:00.123Z info hs1: hs_ring: became leader term=7
    CZMQ's own messages (zauth, zsys) go to the same stream. Data paths
    count events instead of logging them. */

#ifndef SF_LOG_H_INCLUDED
#define SF_LOG_H_INCLUDED

#include "common/sf_error.h"

typedef enum {
    SF_LOG_ERROR,
    SF_LOG_WARNING,
    SF_LOG_NOTICE,
    SF_LOG_INFO,
    SF_LOG_DEBUG,
} sf_log_level_t;

//  Level names accepted by configuration, "error|warning|notice|info|debug".
#define SF_LOG_LEVELS "error|warning|notice|info|debug"

//  Level called NAME, or -1 if there is none.
int sf_log_level_parse (const char *name);

//  Start logging as IDENT at LEVEL and above, to FILENAME (appended) or to
//  stderr when FILENAME is NULL or empty. Returns 0, or -1 with FAULT set.
int sf_log_open (const char *ident, sf_log_level_t level, const char *filename,
                 sf_fault_t *fault);

//  Open the log file again under its name, for log rotation: after the
//  file was renamed away, lines go to a new file of that name. Safe while
//  other threads log (their lines go whole to the old file or the new).
//  Does nothing when logging to stderr. Returns 0, or -1 with FAULT set
//  (lines then keep going to the old file).
int sf_log_reopen (sf_fault_t *fault);

//  Close the log file, if any; later lines go to stderr.
void sf_log_close (void);

//  True if a line at LEVEL would be written.
bool sf_log_enabled (sf_log_level_t level);

//  Write one line at LEVEL. Newlines inside the message become spaces so
//  one event is always one line.
void sf_log_write (sf_log_level_t level, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

#define sf_log_error(...) sf_log_write (SF_LOG_ERROR, __VA_ARGS__)
#define sf_log_warning(...) sf_log_write (SF_LOG_WARNING, __VA_ARGS__)
#define sf_log_notice(...) sf_log_write (SF_LOG_NOTICE, __VA_ARGS__)
#define sf_log_info(...) sf_log_write (SF_LOG_INFO, __VA_ARGS__)
#define sf_log_debug(...) sf_log_write (SF_LOG_DEBUG, __VA_ARGS__)

//  Self test; returns 0 on success.
int sf_log_test (bool verbose);

#endif

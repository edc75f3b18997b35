/*  sf_config: daemon and tool configuration. */

#include "common/sf_config.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

//  Z85's alphabet (ZeroMQ RFC 32).
#define S_Z85_CHARS                                                          \
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/" \
    "*?&<>()[]{}@%$#"
#include <strings.h>
#include <unistd.h>

//  One value that was set, with where it came from.
typedef struct {
    char *path;    //  "homeserver/api" or "ring/member/hs2/raft"
    char *value;   //  validated text
    char *origin;  //  "config hs.cfg" or "flag --api"
} s_entry_t;

struct _sf_config_t {
    const sf_config_key_t *schema;  //  lent by the caller
    zlistx_t *entries;              //  s_entry_t, in the order they were set
    zlist_t *positional;            //  non-flag arguments, autofree
    char *filename;                 //  loaded file, or NULL
};

static void
s_entry_destroy (void **item)
{
    s_entry_t *entry = (s_entry_t *) *item;
    if (entry) {
        free (entry->path);
        free (entry->value);
        free (entry->origin);
        free (entry);
        *item = NULL;
    }
}

sf_config_t *
sf_config_new (const sf_config_key_t *schema)
{
    sf_config_t *self = (sf_config_t *) zmalloc (sizeof (sf_config_t));
    self->schema = schema;
    self->entries = zlistx_new ();
    zlistx_set_destructor (self->entries, s_entry_destroy);
    self->positional = zlist_new ();
    zlist_autofree (self->positional);
    return self;
}

void
sf_config_destroy (sf_config_t **self_p)
{
    if (*self_p) {
        sf_config_t *self = *self_p;
        zlistx_destroy (&self->entries);
        zlist_destroy (&self->positional);
        free (self->filename);
        free (self);
        *self_p = NULL;
    }
}

//  True if PATH matches schema PATTERN, where "*" matches one segment.
static bool
s_path_matches (const char *pattern, const char *path)
{
    while (*pattern && *path) {
        if (pattern [0] == '*' && (pattern [1] == '/' || pattern [1] == 0)) {
            const char *end = strchr (path, '/');
            if (end == path)
                return false;  //  empty segment
            path = end ? end : path + strlen (path);
            pattern++;
        }
        else if (*pattern++ != *path++)
            return false;
    }
    return *pattern == 0 && *path == 0;
}

static const sf_config_key_t *
s_schema_find (const sf_config_key_t *schema, const char *path)
{
    for (const sf_config_key_t *key = schema; key->path; key++)
        if (s_path_matches (key->path, path))
            return key;
    return NULL;
}

static s_entry_t *
s_entry_find (sf_config_t *self, const char *path)
{
    s_entry_t *entry = (s_entry_t *) zlistx_first (self->entries);
    while (entry) {
        if (strcmp (entry->path, path) == 0)
            return entry;
        entry = (s_entry_t *) zlistx_next (self->entries);
    }
    return NULL;
}

int
sf_config_check_endpoint (const char *endpoint, const char *schemes,
                          char *reason, size_t reason_size)
{
    const char *separator = strstr (endpoint, "://");
    if (!separator) {
        snprintf (reason, reason_size, "expected SCHEME://ADDRESS");
        return -1;
    }
    size_t scheme_size = (size_t) (separator - endpoint);
    //  The scheme must be one of SCHEMES, matched as a whole word.
    bool known = false;
    const char *cursor = schemes ? schemes : "tcp|ipc|inproc";
    const char *allowed = cursor;
    while (*cursor) {
        const char *end = strchr (cursor, '|');
        size_t size = end ? (size_t) (end - cursor) : strlen (cursor);
        if (size == scheme_size && strncmp (cursor, endpoint, size) == 0)
            known = true;
        cursor += size + (end ? 1 : 0);
    }
    if (!known) {
        snprintf (reason, reason_size, "scheme must be one of %s", allowed);
        return -1;
    }
    const char *address = separator + 3;
    if (scheme_size == 3
        && (strncmp (endpoint, "tcp", 3) == 0
            || strncmp (endpoint, "udp", 3) == 0)) {
        const char *colon = strrchr (address, ':');
        if (!colon || colon == address) {
            snprintf (reason, reason_size, "expected %.3s://HOST:PORT",
                      endpoint);
            return -1;
        }
        const char *port = colon + 1;
        if (strcmp (port, "*") == 0)
            return 0;
        char *port_end;
        errno = 0;
        long number = strtol (port, &port_end, 10);
        if (!*port || *port_end || errno || number < 1 || number > 65535) {
            snprintf (reason, reason_size,
                      "port must be 1..65535 or *, not '%s'", port);
            return -1;
        }
        if (address [0] == '[' && colon [-1] != ']') {
            snprintf (reason, reason_size, "unclosed '[' in IPv6 host");
            return -1;
        }
        return 0;
    }
    if (!*address) {
        snprintf (reason, reason_size, "empty address after %.*s://",
                  (int) scheme_size, endpoint);
        return -1;
    }
    return 0;
}

//  Check VALUE against KEY's type. Returns 0, or -1 with REASON filled.
static int
s_check_value (const sf_config_key_t *key, const char *value, char *reason,
               size_t reason_size)
{
    switch (key->type) {
        case SF_CONFIG_STRING:
        case SF_CONFIG_PATH:
        case SF_CONFIG_KEY:
            if (key->required && !*value) {
                snprintf (reason, reason_size, "must not be empty");
                return -1;
            }
            return 0;
        case SF_CONFIG_INT: {
            char *end;
            errno = 0;
            long long number = strtoll (value, &end, 10);
            if (!*value || *end || errno) {
                snprintf (reason, reason_size, "'%s' is not an integer", value);
                return -1;
            }
            long long low = LLONG_MIN, high = LLONG_MAX;
            if (key->domain)
                sscanf (key->domain, "%lld..%lld", &low, &high);
            if (number < low || number > high) {
                snprintf (reason, reason_size, "%lld is outside %s", number,
                          key->domain);
                return -1;
            }
            return 0;
        }
        case SF_CONFIG_BOOL: {
            static const char *words [] = {"true", "false", "yes", "no",
                                           "on",   "off",   "1",   "0"};
            for (size_t index = 0; index < sizeof words / sizeof *words;
                 index++)
                if (strcasecmp (value, words [index]) == 0)
                    return 0;
            snprintf (reason, reason_size, "'%s' is not true or false", value);
            return -1;
        }
        case SF_CONFIG_CHOICE: {
            size_t size = strlen (value);
            const char *cursor = key->domain;
            while (size && cursor && *cursor) {
                const char *end = strchr (cursor, '|');
                size_t word = end ? (size_t) (end - cursor) : strlen (cursor);
                if (word == size && strncmp (cursor, value, size) == 0)
                    return 0;
                cursor += word + (end ? 1 : 0);
            }
            snprintf (reason, reason_size, "'%s' is not one of %s", value,
                      key->domain);
            return -1;
        }
        case SF_CONFIG_ENDPOINT: {
            char why [128];
            if (sf_config_check_endpoint (value, key->domain, why,
                                          sizeof why)) {
                snprintf (reason, reason_size, "malformed endpoint '%s': %s",
                          value, why);
                return -1;
            }
            return 0;
        }
    }
    snprintf (reason, reason_size, "unknown key type");
    return -1;
}

//  Store VALUE for PATH, replacing an earlier one.
static void
s_store (sf_config_t *self, const char *path, const char *value,
         const char *origin)
{
    s_entry_t *entry = s_entry_find (self, path);
    if (!entry) {
        entry = (s_entry_t *) zmalloc (sizeof (s_entry_t));
        entry->path = strdup (path);
        zlistx_add_end (self->entries, entry);
    }
    free (entry->value);
    free (entry->origin);
    entry->value = strdup (value);
    entry->origin = strdup (origin);
}

int
sf_config_set (sf_config_t *self, const char *path, const char *value,
               const char *origin, sf_fault_t *fault)
{
    const sf_config_key_t *key = s_schema_find (self->schema, path);
    if (!key)
        return sf_fault_set (fault, SF_EINVAL, "%s: unknown key '%s'", origin,
                             path);
    char reason [256];
    if (s_check_value (key, value, reason, sizeof reason))
        return sf_fault_set (fault, SF_EINVAL, "%s: key '%s': %s", origin, path,
                             reason);
    s_store (self, path, value, origin);
    return 0;
}

//  Number of the first line of TEXT indented with a tab, or 0. zconfig
//  only says "invalid syntax" there, which does not point at the tab.
static int
s_tab_indented_line (const char *text)
{
    int lineno = 1;
    for (const char *line = text; *line; lineno++) {
        const char *cursor = line;
        bool tab = false;
        while (*cursor == ' ' || *cursor == '\t')
            tab |= *cursor++ == '\t';
        if (tab && *cursor && *cursor != '\n' && *cursor != '\r')
            return lineno;
        const char *end = strchr (cursor, '\n');
        if (!end)
            break;
        line = end + 1;
    }
    return 0;
}

//  Parse ZPL TEXT, capturing zconfig's complaint (which it prints on
//  stdout) into REASON. Returns the tree or NULL.
static zconfig_t *
s_parse_zpl (const char *text, char *reason, size_t reason_size)
{
    int tabbed = s_tab_indented_line (text);
    if (tabbed) {
        snprintf (reason, reason_size,
                  "line %d: indented with a tab: ZPL indents each level with "
                  "4 spaces, and allows no tabs",
                  tabbed);
        return NULL;
    }
    snprintf (reason, reason_size, "invalid ZPL syntax");
    fflush (stdout);
    FILE *capture = tmpfile ();
    int saved = dup (STDOUT_FILENO);
    if (capture && saved >= 0)
        dup2 (fileno (capture), STDOUT_FILENO);
    zconfig_t *root = zconfig_str_load (text);
    fflush (stdout);
    if (capture && saved >= 0) {
        dup2 (saved, STDOUT_FILENO);
        close (saved);
        //  "YY-MM-DD HH:MM:SS E (zconfig): (LINE) WHAT"
        char line [256] = "";
        rewind (capture);
        if (fgets (line, sizeof line, capture)) {
            int lineno;
            char what [200];
            char *marker = strstr (line, "(zconfig): (");
            if (marker
                && sscanf (marker, "(zconfig): (%d) %199[^\n]", &lineno, what)
                       == 2)
                snprintf (reason, reason_size, "line %d: %s", lineno, what);
        }
    }
    if (capture)
        fclose (capture);
    return root;
}

//  Resolve a relative path value against the folder of FILENAME.
static char *
s_resolve_path (const char *filename, const char *value)
{
    if (value [0] == '/' || !*value)
        return strdup (value);
    const char *slash = strrchr (filename, '/');
    if (!slash)
        return strdup (value);
    return zsys_sprintf ("%.*s/%s", (int) (slash - filename), filename, value);
}

//  Walk NODE's children, storing every leaf as a key.
static int
s_load_tree (sf_config_t *self, zconfig_t *node, const char *prefix,
             const char *origin, sf_fault_t *fault)
{
    for (zconfig_t *child = zconfig_child (node); child;
         child = zconfig_next (child)) {
        const char *name = zconfig_name (child);
        char *path =
            *prefix ? zsys_sprintf ("%s/%s", prefix, name) : strdup (name);
        const char *value = zconfig_value (child);
        int rc = 0;
        if (zconfig_child (child)) {
            if (value && *value)
                rc = sf_fault_set (fault, SF_EINVAL,
                                   "%s: section '%s' cannot have a value",
                                   origin, path);
            else
                rc = s_load_tree (self, child, path, origin, fault);
        }
        else {
            const sf_config_key_t *key = s_schema_find (self->schema, path);
            if (!key)
                rc = sf_fault_set (fault, SF_EINVAL, "%s: unknown key '%s'",
                                   origin, path);
            else if (!value)
                rc = sf_fault_set (fault, SF_EINVAL,
                                   "%s: key '%s' has no value", origin, path);
            else if (!s_entry_find (self, path)
                     || strncmp (s_entry_find (self, path)->origin, "flag",
                                 4)) {
                //  Flags win over the file, whatever the order.
                //  A key as Z85 text stays text; as a file, a path.
                bool file = key->type == SF_CONFIG_PATH
                            || (key->type == SF_CONFIG_KEY
                                && !(strlen (value) == 40
                                     && strspn (value, S_Z85_CHARS) == 40));
                char *resolved = file ? s_resolve_path (self->filename, value)
                                      : strdup (value);
                rc = sf_config_set (self, path, resolved, origin, fault);
                free (resolved);
            }
        }
        free (path);
        if (rc)
            return rc;
    }
    return 0;
}

int
sf_config_load (sf_config_t *self, const char *filename, sf_fault_t *fault)
{
    char *text = NULL;
    FILE *file = fopen (filename, "r");
    if (!file)
        return sf_fault_set (fault, SF_EINVAL, "config %s: cannot read: %s",
                             filename, strerror (errno));
    size_t size = 0;
    FILE *buffer = open_memstream (&text, &size);
    char chunk [4096];
    size_t got;
    while ((got = fread (chunk, 1, sizeof chunk, file)) > 0)
        fwrite (chunk, 1, got, buffer);
    fclose (file);
    fclose (buffer);

    char reason [256];
    zconfig_t *root = s_parse_zpl (text, reason, sizeof reason);
    free (text);
    if (!root)
        return sf_fault_set (fault, SF_EINVAL, "config %s: %s", filename,
                             reason);
    free (self->filename);
    self->filename = strdup (filename);
    char *origin = zsys_sprintf ("config %s", filename);
    int rc = s_load_tree (self, root, "", origin, fault);
    free (origin);
    zconfig_destroy (&root);
    return rc;
}

//  True if WORD is a bool value spelled as a word (not 1 or 0, which may
//  as well be a positional number).
static bool
s_bool_word (const char *word)
{
    static const char *words [] = {"true", "false", "yes", "no", "on", "off"};
    for (size_t index = 0; index < sizeof words / sizeof *words; index++)
        if (strcasecmp (word, words [index]) == 0)
            return true;
    return false;
}

static const sf_config_key_t *
s_flag_find (const sf_config_key_t *schema, const char *flag, size_t size)
{
    for (const sf_config_key_t *key = schema; key->path; key++)
        if (key->flag && strlen (key->flag) == size
            && strncmp (key->flag, flag, size) == 0)
            return key;
    return NULL;
}

int
sf_config_parse_args (sf_config_t *self, int argc, char **argv,
                      sf_fault_t *fault)
{
    //  First pass: the config file, so flags override it in any order.
    for (int index = 1; index < argc; index++) {
        if (strcmp (argv [index], "--") == 0)
            break;
        const char *file = NULL;
        if (strcmp (argv [index], "--config") == 0
            || strcmp (argv [index], "-c") == 0) {
            if (index + 1 >= argc)
                return sf_fault_set (fault, SF_EINVAL,
                                     "flag %s needs a file name", argv [index]);
            file = argv [++index];
        }
        else if (strncmp (argv [index], "--config=", 9) == 0)
            file = argv [index] + 9;
        if (file && sf_config_load (self, file, fault))
            return -1;
    }
    bool flags_done = false;
    for (int index = 1; index < argc; index++) {
        const char *word = argv [index];
        if (flags_done || word [0] != '-' || strcmp (word, "-") == 0) {
            zlist_append (self->positional, (void *) word);
            continue;
        }
        if (strcmp (word, "--") == 0) {
            flags_done = true;
            continue;
        }
        if (strcmp (word, "--config") == 0 || strcmp (word, "-c") == 0) {
            index++;
            continue;
        }
        if (strncmp (word, "--config=", 9) == 0)
            continue;
        if (strncmp (word, "--", 2) != 0)
            return sf_fault_set (fault, SF_EINVAL, "unknown flag %s", word);
        const char *name = word + 2;
        const char *equals = strchr (name, '=');
        size_t name_size = equals ? (size_t) (equals - name) : strlen (name);
        const sf_config_key_t *key =
            s_flag_find (self->schema, name, name_size);
        if (!key)
            return sf_fault_set (fault, SF_EINVAL,
                                 "unknown flag --%.*s (see --help)",
                                 (int) name_size, name);
        const char *value = equals ? equals + 1 : NULL;
        if (!value) {
            //  A bool flag takes no separate value, so a positional word
            //  after it stays one; a word that can only mean the flag's
            //  value is refused, saying how to write it.
            if (key->type == SF_CONFIG_BOOL && index + 1 < argc
                && s_bool_word (argv [index + 1]))
                return sf_fault_set (fault, SF_EINVAL,
                                     "flag --%s takes its value after '=': "
                                     "write --%s=%s, or --%s alone for true",
                                     key->flag, key->flag, argv [index + 1],
                                     key->flag);
            if (key->type == SF_CONFIG_BOOL)
                value = "true";
            else if (index + 1 < argc)
                value = argv [++index];
            else
                return sf_fault_set (fault, SF_EINVAL,
                                     "flag --%s needs a value", key->flag);
        }
        char origin [96];
        snprintf (origin, sizeof origin, "flag --%s", key->flag);
        if (sf_config_set (self, key->path, value, origin, fault))
            return -1;
    }
    return 0;
}

int
sf_config_check (sf_config_t *self, sf_fault_t *fault)
{
    for (const sf_config_key_t *key = self->schema; key->path; key++) {
        if (!key->required || strchr (key->path, '*')
            || s_entry_find (self, key->path))
            continue;
        char how [96] = "";
        if (key->flag)
            snprintf (how, sizeof how, " or with --%s", key->flag);
        if (self->filename)
            return sf_fault_set (fault, SF_EINVAL,
                                 "config %s: missing required key '%s' "
                                 "(set it in the file%s)",
                                 self->filename, key->path, how);
        return sf_fault_set (fault, SF_EINVAL,
                             "missing required key '%s' "
                             "(set it in a config file given with --config%s)",
                             key->path, how);
    }
    return 0;
}

const char *
sf_config_str (sf_config_t *self, const char *path)
{
    s_entry_t *entry = s_entry_find (self, path);
    if (entry)
        return entry->value;
    const sf_config_key_t *key = s_schema_find (self->schema, path);
    return key ? key->fallback : NULL;
}

int64_t
sf_config_int (sf_config_t *self, const char *path)
{
    const char *value = sf_config_str (self, path);
    return value ? strtoll (value, NULL, 10) : 0;
}

bool
sf_config_bool (sf_config_t *self, const char *path)
{
    const char *value = sf_config_str (self, path);
    if (!value)
        return false;
    return strcasecmp (value, "true") == 0 || strcasecmp (value, "yes") == 0
           || strcasecmp (value, "on") == 0 || strcmp (value, "1") == 0;
}

bool
sf_config_has (sf_config_t *self, const char *path)
{
    return s_entry_find (self, path) != NULL;
}

zlist_t *
sf_config_names (sf_config_t *self, const char *prefix)
{
    zlist_t *names = zlist_new ();
    zlist_autofree (names);
    zlist_comparefn (names, (zlist_compare_fn *) strcmp);
    size_t size = strlen (prefix);
    s_entry_t *entry = (s_entry_t *) zlistx_first (self->entries);
    while (entry) {
        if (strncmp (entry->path, prefix, size) == 0
            && entry->path [size] == '/') {
            const char *name = entry->path + size + 1;
            const char *end = strchr (name, '/');
            if (end) {
                char *copy = strndup (name, (size_t) (end - name));
                if (!zlist_exists (names, copy))
                    zlist_append (names, copy);
                free (copy);
            }
        }
        entry = (s_entry_t *) zlistx_next (self->entries);
    }
    return names;
}

zlist_t *
sf_config_positional (sf_config_t *self)
{
    return self->positional;
}

const char *
sf_config_filename (sf_config_t *self)
{
    return self->filename;
}

void
sf_config_print_flags (const sf_config_key_t *schema, FILE *stream)
{
    static const char *metavars [] = {"TEXT",     "N",    "BOOL", "CHOICE",
                                      "ENDPOINT", "PATH", "KEY"};
    for (const sf_config_key_t *key = schema; key->path; key++) {
        if (!key->flag)
            continue;
        char left [64];
        if (key->type == SF_CONFIG_BOOL)
            //  As the parser takes it: alone for true, or --FLAG=BOOL.
            snprintf (left, sizeof left, "--%s[=BOOL]", key->flag);
        else
            snprintf (left, sizeof left, "--%s %s", key->flag,
                      key->type == SF_CONFIG_CHOICE ? key->domain
                                                    : metavars [key->type]);
        fprintf (stream, "  %-30s %s [%s", left, key->help, key->path);
        if (key->required)
            fprintf (stream, ", required");
        else if (key->fallback)
            fprintf (stream, ", default %s", key->fallback);
        fprintf (stream, "]\n");
    }
}

//  --------------------------------------------------------------------------
//  Self test

static const sf_config_key_t s_test_schema [] = {
    {"node/name", "name", SF_CONFIG_STRING, true, NULL, NULL, "node name"},
    {"node/api", "api", SF_CONFIG_ENDPOINT, true, NULL, "tcp|ipc", "api"},
    {"node/port", "port", SF_CONFIG_INT, false, "7", "1..100", "a number"},
    {"node/fast", "fast", SF_CONFIG_BOOL, false, "false", NULL, "a flag"},
    {"node/key", "key", SF_CONFIG_PATH, false, NULL, NULL, "key file"},
    {"node/peer", "peer", SF_CONFIG_KEY, false, NULL, NULL, "peer's key"},
    {"node/other", "other", SF_CONFIG_KEY, false, NULL, NULL, "a key"},
    {"log/level", "log-level", SF_CONFIG_CHOICE, false, "info",
     "error|info|debug", "log level"},
    {"ring/member/*/raft", NULL, SF_CONFIG_ENDPOINT, false, NULL, "tcp",
     "raft endpoint of a member"},
    {NULL},
};

static char *
s_test_write (const char *text)
{
    char *path = strdup ("/tmp/sf_config_test_XXXXXX");
    int fd = mkstemp (path);
    assert (fd >= 0);
    ssize_t written = write (fd, text, strlen (text));
    assert (written == (ssize_t) strlen (text));
    close (fd);
    return path;
}

//  Load TEXT as a file and return the fault message (empty if it loaded).
static void
s_test_load (const char *text, int expect_rc, const char *expect_message)
{
    char *path = s_test_write (text);
    sf_config_t *config = sf_config_new (s_test_schema);
    sf_fault_t fault;
    sf_fault_clear (&fault);
    int rc = sf_config_load (config, path, &fault);
    if (rc == 0)
        rc = sf_config_check (config, &fault);
    if (rc != expect_rc || !strstr (fault.message, expect_message)) {
        fprintf (stderr, "config test: got rc=%d '%s', want '%s'\n", rc,
                 fault.message, expect_message);
        assert (false);
    }
    if (rc)
        assert (strstr (fault.message, path));
    sf_config_destroy (&config);
    unlink (path);
    free (path);
}

int
sf_config_test (bool verbose)
{
    int rc;
    if (verbose)
        printf (" * sf_config: ");
    char reason [128];
    rc = sf_config_check_endpoint ("tcp://127.0.0.1:7100", "tcp", reason,
                                   sizeof reason);
    assert (rc == 0);
    rc = sf_config_check_endpoint ("tcp://*:*", "tcp", reason, sizeof reason);
    assert (rc == 0);
    rc = sf_config_check_endpoint ("tcp://[::1]:80", "tcp", reason,
                                   sizeof reason);
    assert (rc == 0);
    rc =
        sf_config_check_endpoint ("udp://*:5670", "udp", reason, sizeof reason);
    assert (rc == 0);
    rc = sf_config_check_endpoint ("ipc:///tmp/x", "tcp|ipc", reason,
                                   sizeof reason);
    assert (rc == 0);
    rc = sf_config_check_endpoint ("tcp://host", "tcp", reason, sizeof reason);
    assert (rc == -1);
    assert (strstr (reason, "HOST:PORT"));
    rc = sf_config_check_endpoint ("tcp://host:99999", "tcp", reason,
                                   sizeof reason);
    assert (rc == -1);
    rc = sf_config_check_endpoint ("tcp://host:", "tcp", reason, sizeof reason);
    assert (rc == -1);
    rc = sf_config_check_endpoint ("tcpx://h:1", "tcp|ipc", reason,
                                   sizeof reason);
    assert (rc == -1);
    assert (strstr (reason, "tcp|ipc"));
    rc = sf_config_check_endpoint ("tc://h:1", "tcp", reason, sizeof reason);
    assert (rc == -1);
    rc =
        sf_config_check_endpoint ("localhost:80", "tcp", reason, sizeof reason);
    assert (rc == -1);
    rc = sf_config_check_endpoint ("ipc://", "ipc", reason, sizeof reason);
    assert (rc == -1);

    assert (s_path_matches ("ring/member/*/raft", "ring/member/hs2/raft"));
    assert (!s_path_matches ("ring/member/*/raft", "ring/member//raft"));
    assert (!s_path_matches ("ring/member/*/raft", "ring/member/a/b/raft"));
    assert (!s_path_matches ("node/api", "node/apix"));

    s_test_load ("node\n    name = hs1\n    api = tcp://127.0.0.1:7100\n", 0,
                 "");
    s_test_load ("node\n    name = hs1\n    api = tcp://127.0.0.1:7100\n"
                 "    apix = 1\n",
                 -1, "unknown key 'node/apix'");
    s_test_load ("node\n    name = hs1\n", -1,
                 "missing required key 'node/api'");
    s_test_load ("node\n    name = hs1\n    api = tcp://nohost\n", -1,
                 "key 'node/api': malformed endpoint 'tcp://nohost'");
    s_test_load ("node\n    name = hs1\n    api = tcp://h:1\n    port = 101\n",
                 -1, "key 'node/port': 101 is outside 1..100");
    s_test_load (
        "node\n    name = hs1\n    api = tcp://h:1\n    fast = maybe\n", -1,
        "key 'node/fast': 'maybe' is not true or false");
    s_test_load ("node\n    name = hs1\n    api = tcp://h:1\nlog\n"
                 "    level = loud\n",
                 -1, "key 'log/level': 'loud' is not one of error|info|debug");
    s_test_load ("node\n        name = hs1\n", -1, "line 2:");
    s_test_load ("node\n    name = hs1\n\tapi = tcp://h:1\n", -1,
                 "line 3: indented with a tab: ZPL indents each level with 4 "
                 "spaces");
    s_test_load ("node\n  \t  name = hs1\n", -1, "line 2: indented with a tab");
    //  A tab inside a value, or on an empty line, is no indentation.
    s_test_load ("node\n    name = \"h\ts1\"\n\t\n    api = tcp://h:1\n", 0,
                 "");
    s_test_load ("node\n    name = hs1\n    api = tcp://h:1\nring\n"
                 "    member\n        hs2\n            raft = tcp://h:2\n",
                 0, "");

    //  Flags override the file whatever their order; relative paths in
    //  the file resolve against its folder.
    char *path = s_test_write (
        "node\n    name = file\n    api = tcp://h:1\n"
        "    key = keys/n_secret\n"
        "    peer = keys/peer.cert\n"
        "    other = \"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\"\n"
        "ring\n    member\n        hs2\n"
        "            raft = tcp://h:2\n"
        "        hs3\n            raft = tcp://h:3\n");
    char *argv [] = {"prog",     "--name",    "flag",   "status",
                     "--config", path,        "--fast", "--port=9",
                     "--",       "--literal", NULL};
    sf_config_t *config = sf_config_new (s_test_schema);
    sf_fault_t fault;
    rc = sf_config_parse_args (config, 10, argv, &fault);
    assert (rc == 0);
    rc = sf_config_check (config, &fault);
    assert (rc == 0);
    assert (strcmp (sf_config_str (config, "node/name"), "flag") == 0);
    assert (strcmp (sf_config_str (config, "node/api"), "tcp://h:1") == 0);
    assert (sf_config_int (config, "node/port") == 9);
    assert (sf_config_bool (config, "node/fast"));
    assert (strcmp (sf_config_str (config, "log/level"), "info") == 0);
    assert (!sf_config_has (config, "log/level"));
    assert (strncmp (sf_config_str (config, "node/key"), "/tmp/", 5) == 0);
    assert (strstr (sf_config_str (config, "node/key"), "/keys/n_secret"));
    //  A key: a file resolves as a path, Z85 text stays as it is.
    assert (strncmp (sf_config_str (config, "node/peer"), "/tmp/", 5) == 0);
    assert (strstr (sf_config_str (config, "node/peer"), "/keys/peer.cert"));
    assert (streq (sf_config_str (config, "node/other"),
                   "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"));
    zlist_t *positional = sf_config_positional (config);
    assert (zlist_size (positional) == 2);
    const char *item = (const char *) zlist_first (positional);
    assert (strcmp (item, "status") == 0);
    item = (const char *) zlist_next (positional);
    assert (strcmp (item, "--literal") == 0);
    zlist_t *names = sf_config_names (config, "ring/member");
    assert (zlist_size (names) == 2);
    item = (const char *) zlist_first (names);
    assert (strcmp (item, "hs2") == 0);
    item = (const char *) zlist_next (names);
    assert (strcmp (item, "hs3") == 0);
    zlist_destroy (&names);
    sf_config_destroy (&config);
    sf_config_destroy (&config);  //  idempotent

    char *bad_flag [] = {"prog", "--nope", "1", NULL};
    config = sf_config_new (s_test_schema);
    rc = sf_config_parse_args (config, 3, bad_flag, &fault);
    assert (rc == -1);
    assert (strstr (fault.message, "unknown flag --nope"));
    sf_config_destroy (&config);

    char *bad_value [] = {"prog", "--api", "tcp://x", NULL};
    config = sf_config_new (s_test_schema);
    rc = sf_config_parse_args (config, 3, bad_value, &fault);
    assert (rc == -1);
    assert (strstr (fault.message, "flag --api: key 'node/api'"));
    sf_config_destroy (&config);

    //  A bool flag's value comes after '='; a separate word that can only
    //  be its value is refused with the way to write it.
    char *bool_values [] = {"prog", "--fast=no", "--name", "n", NULL};
    config = sf_config_new (s_test_schema);
    rc = sf_config_parse_args (config, 4, bool_values, &fault);
    assert (rc == 0);
    assert (!sf_config_bool (config, "node/fast"));
    sf_config_destroy (&config);
    char *bool_apart [] = {"prog", "--fast", "false", NULL};
    config = sf_config_new (s_test_schema);
    rc = sf_config_parse_args (config, 3, bool_apart, &fault);
    assert (rc == -1);
    assert (strstr (fault.message, "write --fast=false, or --fast alone"));
    sf_config_destroy (&config);
    char *bool_then_number [] = {"prog", "--fast", "1", NULL};
    config = sf_config_new (s_test_schema);
    rc = sf_config_parse_args (config, 3, bool_then_number, &fault);
    assert (rc == 0);
    assert (sf_config_bool (config, "node/fast"));
    assert (zlist_size (sf_config_positional (config)) == 1);
    sf_config_destroy (&config);

    char *missing_value [] = {"prog", "--api", NULL};
    config = sf_config_new (s_test_schema);
    rc = sf_config_parse_args (config, 2, missing_value, &fault);
    assert (rc == -1);
    assert (strstr (fault.message, "flag --api needs a value"));
    rc = sf_config_check (config, &fault);
    assert (rc == -1);
    assert (strstr (fault.message, "--config or with --name"));
    sf_config_destroy (&config);

    char *no_file [] = {"prog", "-c", "/nonexistent.cfg", NULL};
    config = sf_config_new (s_test_schema);
    rc = sf_config_parse_args (config, 3, no_file, &fault);
    assert (rc == -1);
    assert (strstr (fault.message, "config /nonexistent.cfg: cannot read"));
    sf_config_destroy (&config);

    unlink (path);
    free (path);
    if (verbose)
        printf ("OK\n");
    return 0;
}

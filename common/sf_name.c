/*  sf_name: names and entity paths. */

#include "common/sf_name.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

static bool
s_name_char (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

//  The characters of a path segment: a name's, and ':'. A table, since
//  every update received checks its path.
#define S_RANGE(from, to) [from... to] = true
static const bool s_path_char [256] = {
    S_RANGE ('a', 'z'), S_RANGE ('A', 'Z'), S_RANGE ('0', '9'), ['_'] = true,
    ['-'] = true,       ['.'] = true,       [':'] = true,
};

bool
sf_name_valid (const char *name)
{
    size_t size = strlen (name);
    if (size == 0 || size > 64)
        return false;
    for (const char *cursor = name; *cursor; cursor++)
        if (!s_name_char (*cursor))
            return false;
    return true;
}

bool
sf_name_instance_valid (const char *name)
{
    size_t size = strlen (name);
    if (size == 0 || size > SF_NAME_MAX_INSTANCE)
        return false;
    for (const char *cursor = name; *cursor; cursor++)
        if (!((*cursor >= 'a' && *cursor <= 'z')
              || (*cursor >= '0' && *cursor <= '9') || *cursor == '-'))
            return false;
    return true;
}

bool
sf_name_split (const char *name, char *local, char *instance)
{
    const char *at = strchr (name, '@');
    size_t size = at ? (size_t) (at - name) : strlen (name);
    local [0] = instance [0] = 0;
    if (size > 64 || (at && strlen (at + 1) > SF_NAME_MAX_INSTANCE))
        return false;
    memcpy (local, name, size);
    local [size] = 0;
    if (at)
        strcpy (instance, at + 1);
    if (sf_name_valid (local) && (!at || sf_name_instance_valid (instance)))
        return true;
    local [0] = instance [0] = 0;
    return false;
}

bool
sf_name_path_valid (const char *path, size_t size)
{
    if (size < 2 || size > SF_NAME_MAX_PATH || path [0] != '/'
        || path [size - 1] == '/')
        return false;
    size_t segment = 0;
    for (size_t at = 1; at < size; at++) {
        char c = path [at];
        if (c == '/') {
            if (segment == 0)
                return false;
            segment = 0;
        }
        else if (s_path_char [(unsigned char) c]) {
            if (++segment > 64)
                return false;
        }
        else
            return false;
    }
    return true;
}

bool
sf_name_global_path_valid (const char *path, size_t size)
{
    const char *at = (const char *) memchr (path, '@', size);
    if (!at)
        return sf_name_path_valid (path, size);
    size_t local = (size_t) (at - path), rest = size - local - 1;
    char instance [SF_NAME_MAX_INSTANCE + 1];
    if (rest > SF_NAME_MAX_INSTANCE)
        return false;
    memcpy (instance, at + 1, rest);
    instance [rest] = 0;
    return sf_name_path_valid (path, local)
           && sf_name_instance_valid (instance);
}

//  Length of the segment starting at TEXT (up to '/' or the end).
static size_t
s_segment (const char *text)
{
    const char *end = strchr (text, '/');
    return end ? (size_t) (end - text) : strlen (text);
}

bool
sf_name_path_match (const char *pattern, const char *path)
{
    if (*pattern != '/' || *path != '/')
        return false;
    while (*pattern == '/' && *path == '/') {
        pattern++, path++;
        size_t want = s_segment (pattern);
        size_t have = s_segment (path);
        if (want == 2 && memcmp (pattern, "**", 2) == 0 && !pattern [2])
            return have > 0;
        if (have == 0)
            return false;
        if (!(want == 1 && *pattern == '*')
            && (want != have || memcmp (pattern, path, want) != 0))
            return false;
        pattern += want, path += have;
    }
    return !*pattern && !*path;
}

int
sf_name_test (bool verbose)
{
    if (verbose)
        printf (" * sf_name: ");
    assert (sf_name_instance_valid ("east-2"));
    assert (sf_name_instance_valid ("abcdefghijklmnopqrstuvwxyz012345"));
    assert (!sf_name_instance_valid ("abcdefghijklmnopqrstuvwxyz0123456"));
    assert (!sf_name_instance_valid (""));
    assert (!sf_name_instance_valid ("East"));
    assert (!sf_name_instance_valid ("a_b"));
    assert (!sf_name_instance_valid ("a@b"));
    char local [65], instance [SF_NAME_MAX_INSTANCE + 1];
    assert (sf_name_split ("b@east", local, instance));
    assert (!strcmp (local, "b") && !strcmp (instance, "east"));
    assert (sf_name_split ("sim-1.a", local, instance));
    assert (!strcmp (local, "sim-1.a") && !instance [0]);
    assert (!sf_name_split ("@east", local, instance) && !local [0]);
    assert (!sf_name_split ("b@", local, instance));
    assert (!sf_name_split ("b@East", local, instance) && !instance [0]);
    assert (!sf_name_split ("b@e@f", local, instance));
    assert (!sf_name_split ("a b@east", local, instance));
    assert (sf_name_path_valid ("/world/room1/cube42", 19));
    assert (sf_name_path_valid ("/a", 2));
    assert (sf_name_path_valid ("/a/bc", 4));  //  only the SIZE bytes count
    assert (!sf_name_path_valid ("/", 1));
    assert (!sf_name_path_valid ("world", 5));
    assert (!sf_name_path_valid ("/a//b", 5));
    assert (!sf_name_path_valid ("/a/", 3));
    assert (!sf_name_path_valid ("/a b", 4));
    assert (!sf_name_path_valid ("/a\0b", 4));
    //  Every byte: a segment takes exactly a name's characters and ':'
    for (int byte = 0; byte < 256; byte++) {
        char one [2] = {(char) byte, 0}, path [4] = {'/', 'a', (char) byte, 0};
        bool expected = (byte != 0 && sf_name_valid (one)) || byte == ':';
        assert (sf_name_path_valid (path, 3) == expected);
    }
    char long_path [SF_NAME_MAX_PATH + 2];
    for (size_t at = 0; at < sizeof long_path - 1; at++)
        long_path [at] = at % 50 == 0 ? '/' : 'x';
    long_path [sizeof long_path - 1] = 0;
    assert (sf_name_path_valid (long_path, SF_NAME_MAX_PATH));
    assert (!sf_name_path_valid (long_path, SF_NAME_MAX_PATH + 1));
    //  A path of another instance's entity
    static const struct {
        const char *path;
        bool valid;
    } global [] = {{"/w/e@east", true}, {"/w/e", true},
                   {"/w/e@", false},    {"/w/e@East", false},
                   {"@east", false},    {"/w/e@a@b", false},
                   {"/w/@east", false}, {"/w/e@e_1", false}};
    for (size_t at = 0; at < sizeof global / sizeof global [0]; at++)
        assert (sf_name_global_path_valid (global [at].path,
                                           strlen (global [at].path))
                == global [at].valid);
    assert (!sf_name_path_valid ("/w/e@east", 9));
    //  Segments of 64 characters pass, 65 do not, first, middle or last
    char segments [3 * 66 + 1];
    for (int longer = 0; longer < 3; longer++) {
        size_t used = 0;
        for (int at = 0; at < 3; at++) {
            segments [used++] = '/';
            for (int count = 0; count < (at == longer ? 65 : 64); count++)
                segments [used++] = 'a';
        }
        assert (!sf_name_path_valid (segments, used));
        segments [longer * 65 + 33] = '/';  //  cut the long one in two
        assert (sf_name_path_valid (segments, used));
    }

    assert (sf_name_valid ("sim-1.eu"));
    assert (!sf_name_valid ("sim 1"));
    assert (!sf_name_valid (""));


    assert (sf_name_path_match ("/world/*/cube42", "/world/room1/cube42"));
    assert (!sf_name_path_match ("/world/*/cube42", "/world/room1/cube4"));
    assert (!sf_name_path_match ("/world/*", "/world/room1/cube42"));
    assert (sf_name_path_match ("/world/**", "/world/room1/cube42"));
    assert (sf_name_path_match ("/world/**", "/world/room1"));
    assert (!sf_name_path_match ("/world/**", "/world"));
    assert (sf_name_path_match ("/a/b", "/a/b"));
    assert (!sf_name_path_match ("/a/b", "/a/bc"));
    assert (!sf_name_path_match ("/a/bc", "/a/b"));
    assert (!sf_name_path_match ("/*", "/a/b"));
    assert (sf_name_path_match ("/*/b", "/a/b"));
    if (verbose)
        printf ("OK\n");
    return 0;
}

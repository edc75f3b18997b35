/*  selftest: runs module selftests by name, so ctest lists one test per
    module. Usage: selftest [-q] [MODULE...]; no module runs them all.
    `selftest --registered NAME...` checks that NAMEs, in order, are the
    whole table: tests/CMakeLists.txt registers its ctests from the same
    list (selftest_list.h) and asks this, so a line its parser missed
    fails the build's tests instead of leaving a selftest unrun. */

#include "tests/unit/selftest_list.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define S_DECLARE(name) int name##_test (bool verbose);
SELFTEST_LIST (S_DECLARE)

typedef struct {
    const char *name;
    int (*test) (bool verbose);
} s_selftest_t;

#define S_ENTRY(name) {#name, name##_test},
static const s_selftest_t s_selftests [] = {SELFTEST_LIST (S_ENTRY)};
#define S_SELFTESTS (sizeof s_selftests / sizeof s_selftests [0])

//  Whether NAMES (COUNT of them) are exactly the table's names, in order;
//  prints the first difference.
static bool
s_registered (char **names, int count)
{
    for (size_t index = 0; index < S_SELFTESTS; index++) {
        const char *name = s_selftests [index].name;
        if (index >= (size_t) count || strcmp (names [index], name) != 0) {
            fprintf (stderr, "selftest: %s is not registered as a ctest\n",
                     name);
            return false;
        }
    }
    if ((size_t) count > S_SELFTESTS) {
        fprintf (stderr, "selftest: ctest %s has no selftest\n",
                 names [S_SELFTESTS]);
        return false;
    }
    return true;
}

int
main (int argc, char *argv [])
{
    if (argc > 1 && strcmp (argv [1], "--registered") == 0)
        return s_registered (argv + 2, argc - 2) ? 0 : 1;
    bool verbose = true;
    int first = 1;
    if (argc > 1 && strcmp (argv [1], "-q") == 0) {
        verbose = false;
        first = 2;
    }
    int ran = 0;
    for (size_t at = 0; at < S_SELFTESTS; at++) {
        const s_selftest_t *entry = &s_selftests [at];
        bool wanted = first >= argc;
        for (int index = first; index < argc; index++)
            wanted |= strcmp (argv [index], entry->name) == 0;
        if (!wanted)
            continue;
        if (entry->test (verbose))
            return 1;
        ran++;
    }
    if (ran == 0) {
        fprintf (stderr, "selftest: no such module\n");
        return 2;
    }
    return 0;
}

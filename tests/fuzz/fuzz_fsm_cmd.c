/*  fuzz_fsm_cmd: libFuzzer target for the state machine's operations
    (protocol/homeserver-api.md, federation.md): every argument a client,
    a peer instance or the ring itself may send reaches an operation's
    schema check and, if it passes, its apply. Input: an operation name,
    a newline, then its arguments as JSON; the first byte's low bit says
    whether the principal is an administrator. Commands apply to one state
    machine that lives across inputs, so later inputs meet the rows earlier
    ones made. Nothing may crash, leak or corrupt memory, and a command
    refused must change nothing. */

#include "broker/hs_fsm.h"
#include "common/sf_log.h"
#include "protocol/ring_cmd.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static hs_fsm_t *s_fsm;
static raft_index s_index;

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (!s_fsm) {
        sf_log_open ("fuzz_fsm_cmd", SF_LOG_ERROR, NULL, NULL);
        sf_fault_t fault;
        s_fsm = hs_fsm_new (&fault);
        if (!s_fsm)
            abort ();
    }
    if (size < 2)
        return 0;
    bool admin = data [0] & 1;
    const char *text = (const char *) data + 1;
    size_t rest = size - 1;
    const char *newline = memchr (text, '\n', rest);
    if (!newline || newline == text || (size_t) (newline - text) > 64)
        return 0;
    char op [65];
    memcpy (op, text, (size_t) (newline - text));
    op [newline - text] = 0;
    json_t *args =
        json_loadb (newline + 1, rest - (size_t) (newline - text) - 1, 0, NULL);
    if (!json_is_object (args)) {
        json_decref (args);
        return 0;
    }
    sf_fault_t fault;
    if (hs_fsm_check (op, args, &fault) == 0) {
        uint8_t *command;
        size_t command_size;
        //  A fixed principal: the first administrator or sim it names.
        static const char principal [] =
            "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
        if (ring_cmd_encode (op, principal, admin, 1000 + s_index, args,
                             &command, &command_size)
            == 0) {
            raft_index before = hs_fsm_last_change (s_fsm);
            json_t *result =
                hs_fsm_apply (s_fsm, ++s_index, command, command_size, &fault);
            //  A refusal changes nothing.
            if (!result && hs_fsm_last_change (s_fsm) != before)
                abort ();
            json_decref (result);
            free (command);
        }
    }
    json_decref (args);
    return 0;
}

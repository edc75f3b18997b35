/*  api_msg: codec for the JSON API envelope (protocol/homeserver-api.md). */

#include "protocol/api_msg.h"
#include "common/sf_json.h"

#include <assert.h>
#include <string.h>

bool
api_msg_op_valid (const char *name)
{
    size_t size = strlen (name);
    if (size == 0 || size > API_MSG_MAX_OP)
        return false;
    bool word_start = true;
    for (const char *cursor = name; *cursor; cursor++) {
        char c = *cursor;
        if (word_start) {
            if (c < 'a' || c > 'z')
                return false;
            word_start = false;
        }
        else if (c == '.')
            word_start = true;
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                   || c == '_'))
            return false;
    }
    return !word_start;
}

int
api_msg_decode (api_msg_t *self, const void *data, size_t size,
                sf_fault_t *fault)
{
    self->root = NULL;
    self->id = NULL;
    self->op = NULL;
    if (size > API_MSG_MAX_REQUEST)
        return sf_fault_set (fault, SF_ETOOLARGE,
                             "request of %zu bytes exceeds the limit of %d",
                             size, API_MSG_MAX_REQUEST);
    if (size == 0)
        return sf_fault_set (fault, SF_EMALFORMED, "empty request");
    self->root = sf_json_parse (data, size, fault);
    if (!self->root)
        return -1;
    if (!json_is_object (self->root))
        return sf_fault_set (fault, SF_EMALFORMED,
                             "request must be a JSON object");
    json_t *id = json_object_get (self->root, "id");
    if (!id)
        return sf_fault_set (fault, SF_EREQUEST, "missing field 'id'");
    if (json_is_string (id)) {
        if (json_string_length (id) > API_MSG_MAX_ID)
            return sf_fault_set (fault, SF_EREQUEST,
                                 "field 'id' is longer than %d bytes",
                                 API_MSG_MAX_ID);
    }
    else if (!json_is_integer (id))
        return sf_fault_set (fault, SF_EREQUEST,
                             "field 'id' must be a string or an integer");
    self->id = id;
    json_t *op = json_object_get (self->root, "op");
    if (!op)
        return sf_fault_set (fault, SF_EREQUEST, "missing field 'op'");
    if (!json_is_string (op))
        return sf_fault_set (fault, SF_EREQUEST, "field 'op' must be a string");
    //  Reject embedded nulls: the op is used as a C string from here on.
    if (strlen (json_string_value (op)) != json_string_length (op)
        || !api_msg_op_valid (json_string_value (op)))
        return sf_fault_set (fault, SF_EREQUEST,
                             "field 'op' is not a valid operation name");
    self->op = json_string_value (op);
    return 0;
}

void
api_msg_reset (api_msg_t *self)
{
    json_decref (self->root);
    self->root = NULL;
    self->id = NULL;
    self->op = NULL;
}

json_t *
api_msg_reply_ok (json_t *id)
{
    return json_pack ("{s:O,s:b}", "id", id ? id : json_null (), "ok", 1);
}

//  MESSAGE as a JSON string. Parser messages quote the request, which may
//  not be UTF-8: such bytes become '?' so the reply is always valid JSON.
static json_t *
s_message_string (const char *message)
{
    json_t *string = json_string (message);
    if (string)
        return string;
    char *clean = strdup (message);
    for (char *cursor = clean; *cursor; cursor++)
        if ((unsigned char) *cursor >= 0x80)
            *cursor = '?';
    string = json_string (clean);
    free (clean);
    return string;
}

json_t *
api_msg_reply_error (json_t *id, sf_error_t error, const char *message)
{
    if (error == SF_OK)
        error = SF_EINTERNAL;
    if (!message || !*message)
        message = sf_error_message (error);
    return json_pack ("{s:O,s:b,s:{s:s,s:o}}", "id", id ? id : json_null (),
                      "ok", 0, "error", "code", sf_error_code (error),
                      "message", s_message_string (message));
}

char *
api_msg_encode (const json_t *reply)
{
    return sf_json_text (reply);
}

json_t *
api_msg_decode_reply (const void *data, size_t size, sf_fault_t *fault)
{
    json_t *reply = sf_json_parse (data, size, fault);
    if (!reply)
        return NULL;
    json_t *ok = json_object_get (reply, "ok");
    const char *problem = NULL;
    if (!json_is_object (reply))
        problem = "reply is not a JSON object";
    else if (!json_is_boolean (ok))
        problem = "reply has no boolean 'ok'";
    else if (!json_object_get (reply, "id"))
        problem = "reply has no 'id'";
    else if (json_is_false (ok)) {
        json_t *error = json_object_get (reply, "error");
        if (!json_is_string (json_object_get (error, "code"))
            || !json_is_string (json_object_get (error, "message")))
            problem = "error reply lacks error.code or error.message";
    }
    if (problem) {
        sf_fault_set (fault, SF_EMALFORMED, "%s", problem);
        json_decref (reply);
        return NULL;
    }
    return reply;
}

int
api_msg_reply_fault (const json_t *reply, sf_fault_t *fault)
{
    if (json_is_true (json_object_get (reply, "ok")))
        return 0;
    json_t *error = json_object_get (reply, "error");
    return api_msg_code_fault (
        json_string_value (json_object_get (error, "code")),
        json_string_value (json_object_get (error, "message")), fault);
}

int
api_msg_code_fault (const char *code, const char *message, sf_fault_t *fault)
{
    sf_error_t known = sf_error_from_code (code);
    //  A code from a newer server still reaches the caller in the message.
    if (known == SF_ERROR_COUNT)
        return sf_fault_set (fault, SF_EINTERNAL, "%s: %s", code ? code : "?",
                             message ? message : "");
    return sf_fault_set (fault, known, "%s", message ? message : "");
}

char *
api_msg_serve (const api_msg_op_t *ops, void *context, const void *data,
               size_t size, const char *principal, sf_error_t *error)
{
    api_msg_t request;
    sf_fault_t fault;
    sf_fault_clear (&fault);
    json_t *reply = NULL;
    if (api_msg_decode (&request, data, size, &fault) == 0) {
        const api_msg_op_t *entry = ops;
        while (entry->op && strcmp (entry->op, request.op) != 0)
            entry++;
        if (!entry->op)
            sf_fault_set (&fault, SF_EUNKNOWNOP, "no such operation '%s'",
                          request.op);
        else {
            reply = api_msg_reply_ok (request.id);
            if (entry->handler (context, &request, principal, reply, &fault)) {
                json_decref (reply);
                reply = NULL;
                if (fault.error == SF_OK)
                    sf_fault_set (&fault, SF_EINTERNAL,
                                  "handler of '%s' failed without a reason",
                                  request.op);
            }
        }
    }
    if (!reply)
        reply = api_msg_reply_error (request.id, fault.error, fault.message);
    if (error)
        *error = fault.error;
    char *text = api_msg_encode (reply);
    json_decref (reply);
    api_msg_reset (&request);
    return text;
}

//  --------------------------------------------------------------------------
//  Self test

static int
s_test_echo (void *context, const api_msg_t *request, const char *principal,
             json_t *reply, sf_fault_t *fault)
{
    const char *word = NULL;
    if (sf_json_string (request->root, "word", true, &word, fault))
        return -1;
    json_object_set_new (reply, "word", json_string (word));
    json_object_set_new (reply, "principal", json_string (principal));
    *(int *) context += 1;
    return 0;
}

static int
s_test_silent (void *context, const api_msg_t *request, const char *principal,
               json_t *reply, sf_fault_t *fault)
{
    (void) context, (void) request, (void) principal, (void) reply;
    (void) fault;
    return -1;
}

static const api_msg_op_t s_test_ops [] = {
    {"echo", s_test_echo},
    {"silent", s_test_silent},
    {NULL, NULL},
};

static void
s_expect_serve (const char *request, const char *expect, sf_error_t error)
{
    int calls = 0;
    sf_error_t got;
    char *reply = api_msg_serve (s_test_ops, &calls, request, strlen (request),
                                 "KEY", &got);
    if (strcmp (reply, expect) != 0 || got != error) {
        fprintf (stderr, "api_msg_serve: '%s' gave '%s'\n", request, reply);
        assert (false);
    }
    free (reply);
}

static void
s_expect (const char *text, int rc, sf_error_t error, const char *message,
          bool has_id)
{
    api_msg_t msg;
    sf_fault_t fault;
    sf_fault_clear (&fault);
    int got = api_msg_decode (&msg, text, strlen (text), &fault);
    if (got != rc || fault.error != error
        || (message && !strstr (fault.message, message))
        || (msg.id != NULL) != has_id) {
        fprintf (stderr, "api_msg: '%s' gave rc=%d %s '%s'\n", text, got,
                 sf_error_code (fault.error), fault.message);
        assert (false);
    }
    api_msg_reset (&msg);
}

int
api_msg_test (bool verbose)
{
    int rc;
    if (verbose)
        printf (" * api_msg: ");
    assert (api_msg_op_valid ("status"));
    assert (api_msg_op_valid ("entity.set_rule"));
    assert (api_msg_op_valid ("a1.b2"));
    assert (!api_msg_op_valid (""));
    assert (!api_msg_op_valid ("Status"));
    assert (!api_msg_op_valid ("entity."));
    assert (!api_msg_op_valid (".entity"));
    assert (!api_msg_op_valid ("a..b"));
    assert (!api_msg_op_valid ("1abc"));
    assert (!api_msg_op_valid ("a-b"));

    s_expect ("{\"op\":\"status\",\"id\":1}", 0, SF_OK, NULL, true);
    s_expect ("{\"op\":\"status\",\"id\":\"x\",\"extra\":[1]}", 0, SF_OK, NULL,
              true);
    s_expect ("{\"op\":", -1, SF_EMALFORMED, "malformed JSON", false);
    s_expect ("[1,2]", -1, SF_EMALFORMED, "must be a JSON object", false);
    s_expect ("\"status\"", -1, SF_EMALFORMED, "JSON object", false);
    s_expect ("", -1, SF_EMALFORMED, "empty request", false);
    s_expect ("{\"op\":\"status\"}", -1, SF_EREQUEST, "missing field 'id'",
              false);
    s_expect ("{\"op\":\"status\",\"id\":1.5}", -1, SF_EREQUEST,
              "string or an integer", false);
    s_expect ("{\"op\":\"status\",\"id\":null}", -1, SF_EREQUEST, "'id'",
              false);
    s_expect ("{\"id\":7}", -1, SF_EREQUEST, "missing field 'op'", true);
    s_expect ("{\"id\":7,\"op\":3}", -1, SF_EREQUEST, "must be a string", true);
    s_expect ("{\"id\":7,\"op\":\"Bad Op\"}", -1, SF_EREQUEST,
              "not a valid operation", true);
    s_expect ("{\"id\":7,\"op\":\"st\\u0000x\"}", -1, SF_EMALFORMED,
              "is not allowed", false);
    s_expect ("{\"id\":7,\"id\":8,\"op\":\"status\"}", -1, SF_EMALFORMED,
              "duplicate", false);

    //  Ids longer than the limit are refused.
    char long_id [400];
    snprintf (long_id, sizeof long_id, "{\"op\":\"status\",\"id\":\"%0*d\"}",
              API_MSG_MAX_ID + 1, 0);
    s_expect (long_id, -1, SF_EREQUEST, "longer than", false);

    //  Oversize requests are refused before parsing.
    size_t big = API_MSG_MAX_REQUEST + 1;
    char *huge = (char *) malloc (big);
    memset (huge, ' ', big);
    api_msg_t msg;
    sf_fault_t fault;
    rc = api_msg_decode (&msg, huge, big, &fault);
    assert (rc == -1);
    assert (fault.error == SF_ETOOLARGE);
    api_msg_reset (&msg);
    free (huge);

    //  Every truncation of a valid request fails cleanly.
    const char *valid =
        "{\"op\":\"entity.get\",\"id\":\"r-1\",\"path\":\"/a\"}";
    for (size_t cut = 0; cut < strlen (valid); cut++) {
        rc = api_msg_decode (&msg, valid, cut, &fault);
        assert (rc == -1);
        api_msg_reset (&msg);
    }

    //  Replies round-trip through the client-side decoder.
    rc = api_msg_decode (&msg, valid, strlen (valid), &fault);
    assert (rc == 0);
    assert (strcmp (msg.op, "entity.get") == 0);
    json_t *reply = api_msg_reply_ok (msg.id);
    json_object_set_new (reply, "node", json_string ("hs1"));
    char *text = api_msg_encode (reply);
    assert (strcmp (text, "{\"id\":\"r-1\",\"ok\":true,\"node\":\"hs1\"}")
            == 0);
    json_t *back = api_msg_decode_reply (text, strlen (text), &fault);
    assert (back);
    rc = api_msg_reply_fault (back, &fault);
    assert (rc == 0);
    json_decref (back);
    free (text);
    json_decref (reply);

    //  Invalid UTF-8 quoted from a request cannot break the reply.
    reply = api_msg_reply_error (NULL, SF_EMALFORMED, "near '\xcf\x87\xdd'");
    assert (reply);
    text = api_msg_encode (reply);
    assert (strstr (text, "\"near '?\?\?'\""));
    free (text);
    json_decref (reply);
    const char *broken = "{\"op\":\"\\u000\xcf\x87";
    text =
        api_msg_serve (s_test_ops, NULL, broken, strlen (broken), "KEY", NULL);
    assert (strstr (text, "\"code\":\"malformed_json\""));
    free (text);

    reply = api_msg_reply_error (NULL, SF_EUNKNOWNOP, "no such operation 'x'");
    text = api_msg_encode (reply);
    assert (strcmp (text, "{\"id\":null,\"ok\":false,\"error\":{\"code\":"
                          "\"unknown_op\",\"message\":\"no such operation "
                          "'x'\"}}")
            == 0);
    back = api_msg_decode_reply (text, strlen (text), &fault);
    assert (back);
    rc = api_msg_reply_fault (back, &fault);
    assert (rc == -1);
    assert (fault.error == SF_EUNKNOWNOP);
    assert (strcmp (fault.message, "no such operation 'x'") == 0);
    json_decref (back);
    free (text);
    json_decref (reply);
    api_msg_reset (&msg);

    //  Malformed replies are refused by the client decoder.
    back = api_msg_decode_reply ("{\"id\":1}", 8, &fault);
    assert (!back);
    back = api_msg_decode_reply ("{\"id\":1,\"ok\":false}", 19, &fault);
    assert (!back);
    back = api_msg_decode_reply ("[]", 2, &fault);
    assert (!back);
    const char *future =
        "{\"id\":1,\"ok\":false,\"error\":{\"code\":\"new_code\","
        "\"message\":\"m\"}}";
    back = api_msg_decode_reply (future, strlen (future), &fault);
    assert (back);
    rc = api_msg_reply_fault (back, &fault);
    assert (rc == -1);
    assert (fault.error == SF_EINTERNAL);
    assert (strcmp (fault.message, "new_code: m") == 0);
    json_decref (back);

    s_expect_serve ("{\"op\":\"echo\",\"id\":3,\"word\":\"hi\"}",
                    "{\"id\":3,\"ok\":true,\"word\":\"hi\","
                    "\"principal\":\"KEY\"}",
                    SF_OK);
    s_expect_serve ("{\"op\":\"echo\",\"id\":3}",
                    "{\"id\":3,\"ok\":false,\"error\":{\"code\":"
                    "\"invalid_argument\",\"message\":\"missing field "
                    "'word'\"}}",
                    SF_EINVAL);
    s_expect_serve ("{\"op\":\"nope\",\"id\":\"a\"}",
                    "{\"id\":\"a\",\"ok\":false,\"error\":{\"code\":"
                    "\"unknown_op\",\"message\":\"no such operation "
                    "'nope'\"}}",
                    SF_EUNKNOWNOP);
    s_expect_serve ("{\"op\":\"silent\",\"id\":1}",
                    "{\"id\":1,\"ok\":false,\"error\":{\"code\":"
                    "\"internal\",\"message\":\"handler of 'silent' "
                    "failed without a reason\"}}",
                    SF_EINTERNAL);
    s_expect_serve ("nonsense",
                    "{\"id\":null,\"ok\":false,\"error\":{\"code\":"
                    "\"malformed_json\",\"message\":\"malformed JSON at "
                    "line 1 column 8: invalid token near 'nonsense'\"}}",
                    SF_EMALFORMED);
    if (verbose)
        printf ("OK\n");
    return 0;
}

/*  sf_http: an HTTP server (libmicrohttpd) on a daemon's sf_loop. */

#include "common/sf_http.h"
#include "common/sf_log.h"

#include <assert.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

//  How often libmicrohttpd runs without a descriptor's word: it closes
//  connections idle past S_IDLE_S then.
#define S_TICK_MS 500
#define S_IDLE_S 60

//  Per-connection memory: headers and buffers. Headers past about half
//  of it are answered 431 by libmicrohttpd.
#define S_CONNECTION_MEMORY (32 * 1024)

struct _sf_http_t {
    struct MHD_Daemon *daemon;
    sf_loop_t *loop;  //  lent
    int epoll_fd;     //  libmicrohttpd's, a reader of LOOP
    int timer;        //  runs libmicrohttpd for its timeouts
    int kick;         //  a run due at once (a connection resumed), or 0
    sf_http_handler_fn *fn;
    void *arg;
    zlistx_t *connected;  //  sf_http_req_t whose client is there (lent)
    char *cert_pem;       //  kept while the daemon runs, as it asks
    char *key_pem;
    int port;
    char url [300];
    sf_http_counters_t counters;
};

struct _sf_http_req_t {
    sf_http_t *http;                    //  NULL once the server is gone
    struct MHD_Connection *connection;  //  NULL once the client is done
    void *handle;                       //  in http->connected
    char *method;
    char *path;
    json_t *query;
    char *body;  //  NUL-terminated
    size_t size;
    size_t capacity;
    bool too_large;   //  the body passed SF_HTTP_MAX_BODY: 413
    bool dispatched;  //  the handler has seen it
    bool held;        //  the handler keeps it (unanswered, or a stream)
    bool handling;    //  inside the handler's call
    bool suspended;   //  the connection waits for the handler
    //  An answer given inside the handler's call, queued on its return.
    unsigned status;
    struct MHD_Response *response;
    //  A stream's body not yet sent: bytes [sent, queued) of QUEUE.
    bool streaming;
    bool stream_ended;
    char *queue;
    size_t queued;
    size_t sent;
    size_t queue_capacity;
};

static void
s_req_free (sf_http_req_t **req_p)
{
    sf_http_req_t *req = *req_p;
    if (req->response)
        MHD_destroy_response (req->response);
    json_decref (req->query);
    free (req->method);
    free (req->path);
    free (req->body);
    free (req->queue);
    free (req);
    *req_p = NULL;
}

//  Free *REQ_P if neither its client nor its handler needs it.
static void
s_req_release (sf_http_req_t **req_p)
{
    sf_http_req_t *req = *req_p;
    if (!req->connection && !req->held)
        s_req_free (req_p);
    *req_p = NULL;
}

static void s_kick (sf_http_t *self);

//  Resume REQ's connection: libmicrohttpd sends what it has once it runs,
//  and in its external mode a resume wakes no descriptor, so the loop
//  runs it at once.
static void
s_resume (sf_http_req_t *req)
{
    if (req->suspended && req->connection) {
        req->suspended = false;
        MHD_resume_connection (req->connection);
        if (req->http)
            s_kick (req->http);
    }
}

static enum MHD_Result
s_add_query (void *cls, enum MHD_ValueKind kind, const char *key,
             const char *value)
{
    (void) kind;
    json_object_set_new ((json_t *) cls, key, json_string (value ? value : ""));
    return MHD_YES;
}

//  Queue REQ's answer made inside the handler's call.
static enum MHD_Result
s_queue (sf_http_req_t *req)
{
    enum MHD_Result rc =
        MHD_queue_response (req->connection, req->status, req->response);
    MHD_destroy_response (req->response);
    req->response = NULL;
    return rc;
}

static enum MHD_Result
s_access (void *cls, struct MHD_Connection *connection, const char *url,
          const char *method, const char *version, const char *upload,
          size_t *upload_size, void **context)
{
    (void) version;
    sf_http_t *self = (sf_http_t *) cls;
    sf_http_req_t *req = (sf_http_req_t *) *context;
    if (!req) {
        req = (sf_http_req_t *) zmalloc (sizeof (sf_http_req_t));
        req->http = self;
        req->connection = connection;
        req->method = strdup (method);
        req->path = strdup (url);
        req->body = strdup ("");
        req->handle = zlistx_add_end (self->connected, req);
        *context = req;
        //  A declared length over the limit is refused before its body.
        const char *length = MHD_lookup_connection_value (
            connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (length && strtoull (length, NULL, 10) > SF_HTTP_MAX_BODY)
            req->too_large = true;
        else
            return MHD_YES;
    }
    if (*upload_size) {
        size_t more = *upload_size;
        *upload_size = 0;
        if (req->too_large || req->size + more > SF_HTTP_MAX_BODY) {
            req->too_large = true;
            return MHD_YES;
        }
        if (req->size + more + 1 > req->capacity) {
            req->capacity = (req->size + more + 1) * 2;
            req->body = (char *) realloc (req->body, req->capacity);
        }
        memcpy (req->body + req->size, upload, more);
        req->size += more;
        req->body [req->size] = '\0';
        return MHD_YES;
    }
    if (req->dispatched)
        return MHD_YES;  //  resumed: the answer is queued already
    req->dispatched = true;
    if (req->too_large) {
        self->counters.body_too_large++;
        const char *text = "{\"error\":{\"code\":\"too_large\",\"message\":"
                           "\"the body is over 65536 bytes\"}}";
        struct MHD_Response *response = MHD_create_response_from_buffer (
            strlen (text), (void *) text, MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE,
                                 "application/json");
        enum MHD_Result rc = MHD_queue_response (
            connection, MHD_HTTP_CONTENT_TOO_LARGE, response);
        MHD_destroy_response (response);
        return rc;
    }
    req->query = json_object ();
    MHD_get_connection_values (connection, MHD_GET_ARGUMENT_KIND, s_add_query,
                               req->query);
    self->counters.requests++;
    req->held = true;
    req->handling = true;
    self->fn (self->arg, req);
    req->handling = false;
    if (req->response)
        return s_queue (req);
    //  The handler answers later: wait without reading.
    req->suspended = true;
    MHD_suspend_connection (connection);
    return MHD_YES;
}

static void
s_completed (void *cls, struct MHD_Connection *connection, void **context,
             enum MHD_RequestTerminationCode code)
{
    (void) cls;
    (void) connection;
    (void) code;
    sf_http_req_t *req = (sf_http_req_t *) *context;
    if (!req)
        return;
    *context = NULL;
    if (req->http)
        zlistx_delete (req->http->connected, req->handle);
    req->connection = NULL;
    req->suspended = false;
    s_req_release (&req);
}

static void
s_log (void *arg, const char *format, va_list args)
{
    (void) arg;
    char line [512];
    vsnprintf (line, sizeof line, format, args);
    size_t size = strlen (line);
    while (size && (line [size - 1] == '\n' || line [size - 1] == '\r'))
        line [--size] = '\0';
    sf_log_warning ("sf_http: %s", line);
}

//  Run libmicrohttpd until it has nothing left to do now: its epoll is
//  edge-triggered, so data it read but has not processed yet (a large
//  header, a pipelined request) wakes no descriptor; it says so with a
//  timeout of zero. Bounded, so a busy client cannot hold the loop.
static void
s_serve (sf_http_t *self)
{
    for (int round = 0; round < 64; round++) {
        MHD_run (self->daemon);
        MHD_UNSIGNED_LONG_LONG timeout = 1;
        if (MHD_get_timeout (self->daemon, &timeout) != MHD_YES || timeout)
            return;
    }
}

static int
s_kicked (sf_loop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    sf_http_t *self = (sf_http_t *) arg;
    self->kick = 0;
    s_serve (self);
    return 0;
}

//  Run libmicrohttpd once the current handler returns (never from inside
//  one of its callbacks).
static void
s_kick (sf_http_t *self)
{
    if (!self->kick) {
        int id = sf_loop_timer (self->loop, 0, 1, s_kicked, self);
        self->kick = id > 0 ? id : 0;
    }
}

static int
s_run (sf_loop_t *loop, int fd, void *arg)
{
    (void) loop;
    (void) fd;
    s_serve ((sf_http_t *) arg);
    return 0;
}

static int
s_tick (sf_loop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_serve ((sf_http_t *) arg);
    return 0;
}

//  The whole of file PATH, or NULL with FAULT. A private key (SECRET)
//  readable by group or others is refused, as the CURVE keys are.
static char *
s_read_pem (const char *path, bool secret, sf_fault_t *fault)
{
    struct stat info;
    if (stat (path, &info)) {
        sf_fault_set (fault, SF_EINVAL, "cannot read %s: %s", path,
                      strerror (errno));
        return NULL;
    }
    if (secret && (info.st_mode & 077)) {
        sf_fault_set (fault, SF_EINVAL,
                      "%s is readable by others (mode %03o): chmod 600 it",
                      path, (unsigned) (info.st_mode & 0777));
        return NULL;
    }
    FILE *file = fopen (path, "rb");
    if (!file || info.st_size > 1024 * 1024) {
        sf_fault_set (fault, SF_EINVAL, "cannot read %s: %s", path,
                      file ? "over 1 MiB" : strerror (errno));
        if (file)
            fclose (file);
        return NULL;
    }
    char *text = (char *) zmalloc ((size_t) info.st_size + 1);
    size_t got = fread (text, 1, (size_t) info.st_size, file);
    fclose (file);
    text [got] = '\0';
    return text;
}

//  Resolve ENDPOINT (tcp://HOST:PORT) into ADDRESS. Returns 0, or -1
//  with FAULT.
static int
s_resolve (const char *endpoint, struct sockaddr_storage *address,
           sf_fault_t *fault)
{
    const char *prefix = "tcp://";
    const char *colon = endpoint ? strrchr (endpoint, ':') : NULL;
    if (!endpoint || strncmp (endpoint, prefix, strlen (prefix)) || !colon
        || colon < endpoint + strlen (prefix))
        return sf_fault_set (fault, SF_EINVAL,
                             "http endpoint '%s' is not tcp://HOST:PORT",
                             endpoint ? endpoint : "");
    const char *host = endpoint + strlen (prefix);
    size_t host_size = (size_t) (colon - host);
    char name [256];
    if (host_size >= 2 && host [0] == '[' && host [host_size - 1] == ']') {
        host++;
        host_size -= 2;
    }
    if (host_size == 0 || host_size >= sizeof name)
        return sf_fault_set (fault, SF_EINVAL, "http endpoint '%s' has no host",
                             endpoint);
    memcpy (name, host, host_size);
    name [host_size] = '\0';
    char *end;
    long port = strtol (colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535)
        return sf_fault_set (fault, SF_EINVAL,
                             "http endpoint '%s' has no port 0..65535",
                             endpoint);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *found = NULL;
    int rc = getaddrinfo (streq (name, "*") ? NULL : name, colon + 1, &hints,
                          &found);
    if (rc || !found)
        return sf_fault_set (fault, SF_EINVAL, "http endpoint '%s': %s",
                             endpoint, gai_strerror (rc));
    memset (address, 0, sizeof *address);
    memcpy (address, found->ai_addr, found->ai_addrlen);
    freeaddrinfo (found);
    return 0;
}

sf_http_t *
sf_http_new (const sf_http_config_t *config, sf_loop_t *loop,
             sf_http_handler_fn *fn, void *arg, sf_fault_t *fault)
{
    struct sockaddr_storage address;
    if (s_resolve (config->endpoint, &address, fault))
        return NULL;
    if (!config->cert_file != !config->key_file) {
        sf_fault_set (fault, SF_EINVAL,
                      "http_cert and http_key go together: set both or "
                      "neither");
        return NULL;
    }
    sf_http_t *self = (sf_http_t *) zmalloc (sizeof (sf_http_t));
    self->loop = loop;
    self->fn = fn;
    self->arg = arg;
    self->epoll_fd = -1;
    self->timer = -1;
    self->connected = zlistx_new ();
    unsigned flags =
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (address.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (config->cert_file) {
        self->cert_pem = s_read_pem (config->cert_file, false, fault);
        self->key_pem =
            self->cert_pem ? s_read_pem (config->key_file, true, fault) : NULL;
        if (!self->key_pem)
            goto failed;
        flags |= MHD_USE_TLS;
    }
    struct MHD_OptionItem tls [] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, self->cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, self->key_pem},
        {MHD_OPTION_HTTPS_PRIORITIES, 0,
         (void *) "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"},
        {MHD_OPTION_END, 0, NULL},
    };
    struct MHD_OptionItem none [] = {{MHD_OPTION_END, 0, NULL}};
    self->daemon = MHD_start_daemon (
        flags, 0, NULL, NULL, s_access, self, MHD_OPTION_EXTERNAL_LOGGER, s_log,
        self, MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &address,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned) SF_HTTP_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) S_CONNECTION_MEMORY,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) S_IDLE_S,
        MHD_OPTION_NOTIFY_COMPLETED, s_completed, self, MHD_OPTION_ARRAY,
        self->cert_pem ? tls : none, MHD_OPTION_END);
    if (!self->daemon) {
        if (self->cert_pem)
            sf_fault_set (fault, SF_EINVAL,
                          "cannot serve HTTPS on %s with %s and %s: is the "
                          "port free, do both load, does the key match?",
                          config->endpoint, config->cert_file,
                          config->key_file);
        else
            sf_fault_set (fault, SF_EUNAVAILABLE,
                          "cannot serve HTTP on %s: is the port free?",
                          config->endpoint);
        goto failed;
    }
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info (self->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    self->epoll_fd = info ? info->epoll_fd : -1;
    info = MHD_get_daemon_info (self->daemon, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info ? info->port : 0;
    if (self->epoll_fd < 0 || sf_loop_fd (loop, self->epoll_fd, s_run, self)) {
        sf_fault_set (fault, SF_EINTERNAL, "cannot watch the HTTP server");
        goto failed;
    }
    self->timer = sf_loop_timer (
        loop, config->tick_ms ? config->tick_ms : S_TICK_MS, 0, s_tick, self);
    const char *host = config->endpoint + strlen ("tcp://");
    int host_size = (int) (strrchr (host, ':') - host);
    snprintf (self->url, sizeof self->url, "%s://%.*s:%d",
              self->cert_pem ? "https" : "http", host_size, host, self->port);
    return self;
failed:
    sf_http_destroy (&self);
    return NULL;
}

void
sf_http_destroy (sf_http_t **self_p)
{
    if (!*self_p)
        return;
    sf_http_t *self = *self_p;
    if (self->daemon) {
        //  libmicrohttpd cannot stop with connections suspended; their
        //  requests stay their handlers' until answered.
        for (sf_http_req_t *req =
                 (sf_http_req_t *) zlistx_first (self->connected);
             req; req = (sf_http_req_t *) zlistx_next (self->connected))
            s_resume (req);
        if (self->epoll_fd >= 0)
            sf_loop_fd_end (self->loop, self->epoll_fd);
        sf_loop_timer_end (self->loop, self->timer);
        if (self->kick)
            sf_loop_timer_end (self->loop, self->kick);
        MHD_stop_daemon (self->daemon);
    }
    //  What the stop did not complete is no longer a client's.
    sf_http_req_t *req;
    while ((req = (sf_http_req_t *) zlistx_detach (self->connected, NULL))) {
        req->http = NULL;
        req->connection = NULL;
        s_req_release (&req);
    }
    zlistx_destroy (&self->connected);
    free (self->cert_pem);
    if (self->key_pem)
        sodium_memzero (self->key_pem, strlen (self->key_pem));
    free (self->key_pem);
    free (self);
    *self_p = NULL;
}

json_t *
sf_http_health (json_t *problems, json_t *checks)
{
    bool healthy = json_array_size (problems) == 0;
    json_t *health =
        json_pack ("{s:b,s:o}", "healthy", healthy, "checks", checks);
    if (healthy)
        json_decref (problems);
    else
        json_object_set_new (health, "problems", problems);
    return health;
}

int
sf_http_port (sf_http_t *self)
{
    return self->port;
}

const char *
sf_http_url (sf_http_t *self)
{
    return self->url;
}

const sf_http_counters_t *
sf_http_counters (sf_http_t *self)
{
    return &self->counters;
}

const char *
sf_http_req_method (sf_http_req_t *req)
{
    return req->method;
}

const char *
sf_http_req_path (sf_http_req_t *req)
{
    return req->path;
}

const char *
sf_http_req_header (sf_http_req_t *req, const char *name)
{
    return req->connection ? MHD_lookup_connection_value (req->connection,
                                                          MHD_HEADER_KIND, name)
                           : NULL;
}

const json_t *
sf_http_req_query (sf_http_req_t *req)
{
    return req->query;
}

const char *
sf_http_req_body (sf_http_req_t *req, size_t *size)
{
    *size = req->size;
    return req->body;
}

bool
sf_http_req_connected (sf_http_req_t *req)
{
    return req->connection != NULL;
}

//  Give REQ's client RESPONSE with STATUS: queued on the handler's return
//  if inside its call, else now (the connection is suspended).
static void
s_answer (sf_http_req_t *req, unsigned status, struct MHD_Response *response)
{
    if (!req->connection) {
        MHD_destroy_response (response);
        return;
    }
    if (req->handling) {
        req->status = status;
        req->response = response;
        return;
    }
    MHD_queue_response (req->connection, status, response);
    MHD_destroy_response (response);
    s_resume (req);
}

void
sf_http_respond (sf_http_req_t **req_p, unsigned status,
                 const char *content_type, const char *body, size_t size,
                 const char *const *headers)
{
    sf_http_req_t *req = *req_p;
    if (!req)
        return;
    struct MHD_Response *response = MHD_create_response_from_buffer (
        size, (void *) body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE,
                             content_type);
    for (size_t at = 0; headers && headers [at] && headers [at + 1]; at += 2)
        MHD_add_response_header (response, headers [at], headers [at + 1]);
    s_answer (req, status, response);
    req->held = false;
    s_req_release (req_p);
}

void
sf_http_respond_json (sf_http_req_t **req_p, unsigned status,
                      const json_t *body, const char *const *headers)
{
    char *text = json_dumps (body, JSON_COMPACT);
    size_t size = text ? strlen (text) : 0;
    //  A trailing newline, as curl users expect.
    char *line = (char *) zmalloc (size + 2);
    if (text)
        memcpy (line, text, size);
    line [size] = '\n';
    sf_http_respond (req_p, status, "application/json", line, size + 1,
                     headers);
    free (line);
    free (text);
}

//  libmicrohttpd asks for the stream's next bytes: what is queued, the
//  end, or nothing yet (the connection waits until a write resumes it).
static ssize_t
s_stream_read (void *cls, uint64_t position, char *buffer, size_t max)
{
    (void) position;
    sf_http_req_t *req = (sf_http_req_t *) cls;
    size_t pending = req->queued - req->sent;
    if (pending) {
        size_t size = pending < max ? pending : max;
        memcpy (buffer, req->queue + req->sent, size);
        req->sent += size;
        if (req->sent == req->queued)
            req->sent = req->queued = 0;
        return (ssize_t) size;
    }
    if (req->stream_ended || !req->connection)
        return MHD_CONTENT_READER_END_OF_STREAM;
    req->suspended = true;
    MHD_suspend_connection (req->connection);
    return 0;
}

void
sf_http_stream_open (sf_http_req_t *req, unsigned status,
                     const char *content_type)
{
    req->streaming = true;
    struct MHD_Response *response = MHD_create_response_from_callback (
        MHD_SIZE_UNKNOWN, 16 * 1024, s_stream_read, req, NULL);
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE,
                             content_type);
    MHD_add_response_header (response, MHD_HTTP_HEADER_CACHE_CONTROL,
                             "no-cache");
    s_answer (req, status, response);
}

int
sf_http_stream_write (sf_http_req_t *req, const char *data, size_t size)
{
    if (!req->connection || req->stream_ended)
        return -1;
    if (req->queued - req->sent + size > SF_HTTP_MAX_STREAM_QUEUE) {
        if (req->http)
            req->http->counters.streams_cut++;
        req->stream_ended = true;
        req->queued = req->sent = 0;  //  the client resumes from its last id
        s_resume (req);
        return -1;
    }
    if (req->sent && req->queued + size > req->queue_capacity) {
        memmove (req->queue, req->queue + req->sent, req->queued - req->sent);
        req->queued -= req->sent;
        req->sent = 0;
    }
    if (req->queued + size > req->queue_capacity) {
        req->queue_capacity = (req->queued + size) * 2;
        req->queue = (char *) realloc (req->queue, req->queue_capacity);
    }
    memcpy (req->queue + req->queued, data, size);
    req->queued += size;
    s_resume (req);
    return 0;
}

size_t
sf_http_stream_queued (sf_http_req_t *req)
{
    return req->queued - req->sent;
}

void
sf_http_stream_end (sf_http_req_t **req_p)
{
    sf_http_req_t *req = *req_p;
    if (!req)
        return;
    req->stream_ended = true;
    s_resume (req);
    req->held = false;
    s_req_release (req_p);
}

//  --------------------------------------------------------------------------
//  Self test: a client thread speaks HTTP/1.1 over TCP to a server on a
//  loop, as curl would.

#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    int port;
    int done_fd;  //  written when the client is done
    char answers [6][4096];
} s_client_t;

typedef struct {
    sf_http_req_t *later;   //  answered by a timer
    sf_http_req_t *stream;  //  written by a timer
    int stream_step;
    sf_http_req_t *kept;  //  never answered while the server runs
} s_handler_t;

//  Send REQUEST to PORT and read the answer until the server closes.
static void
s_exchange (int port, const char *request, size_t size, char *answer,
            size_t max)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons ((uint16_t) port),
                             .sin_addr.s_addr = htonl (INADDR_LOOPBACK)};
    struct timeval timeout = {.tv_sec = 5};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    answer [0] = '\0';
    if (connect (fd, (struct sockaddr *) &to, sizeof to) == 0) {
        for (size_t at = 0; at < size;) {
            ssize_t sent = send (fd, request + at, size - at, MSG_NOSIGNAL);
            if (sent <= 0)
                break;
            at += (size_t) sent;
        }
        size_t got = 0;
        ssize_t rc;
        while (got + 1 < max
               && (rc = recv (fd, answer + got, max - 1 - got, 0)) > 0)
            got += (size_t) rc;
        answer [got] = '\0';
    }
    close (fd);
}

static void *
s_client (void *arg)
{
    s_client_t *client = (s_client_t *) arg;
    const char *now = "GET /now/a%20b?x=1&y=two%2F HTTP/1.1\r\nHost: t\r\n"
                      "X-Token: abc\r\nConnection: close\r\n\r\n";
    s_exchange (client->port, now, strlen (now), client->answers [0], 4096);
    const char *later = "POST /later HTTP/1.1\r\nHost: t\r\nContent-Length: "
                        "5\r\nConnection: close\r\n\r\nhello";
    s_exchange (client->port, later, strlen (later), client->answers [1], 4096);
    //  A body over the limit, declared, then chunked.
    const char *big = "POST /now HTTP/1.1\r\nHost: t\r\nContent-Length: "
                      "70000\r\nConnection: close\r\n\r\n";
    s_exchange (client->port, big, strlen (big), client->answers [2], 4096);
    size_t size = 80 * 1024;
    char *chunked = (char *) zmalloc (size + 200);
    int head = snprintf (chunked, 200,
                         "POST /now HTTP/1.1\r\nHost: t\r\nTransfer-"
                         "Encoding: chunked\r\nConnection: close\r\n\r\n"
                         "%zx\r\n",
                         size - 200);
    memset (chunked + head, 'x', size - 200);
    memcpy (chunked + head + size - 200, "\r\n0\r\n\r\n", 7);
    s_exchange (client->port, chunked, (size_t) head + size - 200 + 7,
                client->answers [3], 4096);
    free (chunked);
    const char *stream = "GET /stream HTTP/1.1\r\nHost: t\r\n"
                         "Connection: close\r\n\r\n";
    s_exchange (client->port, stream, strlen (stream), client->answers [4],
                4096);
    //  Left waiting: the server stops with it unanswered.
    const char *kept = "GET /kept HTTP/1.1\r\nHost: t\r\n\r\n";
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons ((uint16_t) client->port),
                             .sin_addr.s_addr = htonl (INADDR_LOOPBACK)};
    if (connect (fd, (struct sockaddr *) &to, sizeof to) == 0)
        send (fd, kept, strlen (kept), MSG_NOSIGNAL);
    usleep (100 * 1000);
    if (write (client->done_fd, "x", 1) != 1)
        perror ("write");
    usleep (100 * 1000);
    close (fd);
    return NULL;
}

static void
s_test_handler (void *arg, sf_http_req_t *req)
{
    s_handler_t *handler = (s_handler_t *) arg;
    const char *path = sf_http_req_path (req);
    if (streq (path, "/later"))
        handler->later = req;
    else if (streq (path, "/stream")) {
        handler->stream = req;
        sf_http_stream_open (req, 200, "text/event-stream");
    }
    else if (streq (path, "/kept"))
        handler->kept = req;
    else {
        size_t size;
        sf_http_req_body (req, &size);
        json_t *echo = json_pack (
            "{s:s,s:s,s:O,s:s?,s:i}", "method", sf_http_req_method (req),
            "path", path, "query", sf_http_req_query (req), "token",
            sf_http_req_header (req, "x-token"), "size", (int) size);
        const char *headers [] = {"Retry-After", "1", NULL};
        sf_http_respond_json (&req, 200, echo, headers);
        json_decref (echo);
    }
}

static int
s_test_tick (sf_loop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_handler_t *handler = (s_handler_t *) arg;
    if (handler->later) {
        size_t size;
        const char *body = sf_http_req_body (handler->later, &size);
        char text [64];
        snprintf (text, sizeof text, "later %zu %s", size, body);
        sf_http_respond (&handler->later, 201, "text/plain", text,
                         strlen (text), NULL);
    }
    if (handler->stream) {
        const char *parts [] = {"data: one\n\n", "data: two\n\n"};
        if (handler->stream_step < 2)
            sf_http_stream_write (handler->stream, parts [handler->stream_step],
                                  strlen (parts [handler->stream_step]));
        else
            sf_http_stream_end (&handler->stream);
        handler->stream_step++;
    }
    return 0;
}

static int
s_test_done (sf_loop_t *loop, int fd, void *arg)
{
    (void) loop;
    (void) fd;
    (void) arg;
    return -1;
}

int
sf_http_test (bool verbose)
{
    if (verbose)
        printf (" * sf_http: ");
    sf_fault_t fault;
    sf_loop_t *loop = sf_loop_new ();
    s_handler_t handler = {0};
    //  Endpoints that cannot be served say why.
    const char *bad [] = {"127.0.0.1:80",
                          "tcp://127.0.0.1",
                          "tcp://:80",
                          "tcp://127.0.0.1:x",
                          "tcp://127.0.0.1:70000",
                          "tcp://no.such.host.invalid:80"};
    for (size_t at = 0; at < sizeof bad / sizeof bad [0]; at++) {
        sf_http_config_t config = {.endpoint = bad [at]};
        sf_fault_clear (&fault);
        assert (!sf_http_new (&config, loop, s_test_handler, &handler, &fault));
        assert (fault.error == SF_EINVAL);
    }
    sf_http_config_t half = {.endpoint = "tcp://127.0.0.1:0",
                             .cert_file = "/nonexistent.pem"};
    assert (!sf_http_new (&half, loop, s_test_handler, &handler, &fault));
    assert (strstr (fault.message, "together"));

    //  No tick: every answer given later, and every stream write, must
    //  wake the server by itself, or the client waits in vain.
    sf_http_config_t config = {.endpoint = "tcp://127.0.0.1:0",
                               .tick_ms = 3600 * 1000};
    sf_http_t *http =
        sf_http_new (&config, loop, s_test_handler, &handler, &fault);
    assert (http);
    assert (sf_http_port (http) > 0);
    assert (strstr (sf_http_url (http), "http://127.0.0.1:"));
    //  A port taken is a fault, not a crash.
    char taken [64];
    snprintf (taken, sizeof taken, "tcp://127.0.0.1:%d", sf_http_port (http));
    sf_http_config_t again = {.endpoint = taken};
    assert (!sf_http_new (&again, loop, s_test_handler, &handler, &fault));
    assert (fault.error == SF_EUNAVAILABLE);

    int pipe_fds [2];
    assert (pipe (pipe_fds) == 0);
    static s_client_t client;
    memset (&client, 0, sizeof client);
    client.port = sf_http_port (http);
    client.done_fd = pipe_fds [1];
    sf_loop_fd (loop, pipe_fds [0], s_test_done, NULL);
    sf_loop_timer (loop, 20, 0, s_test_tick, &handler);
    pthread_t thread;
    assert (pthread_create (&thread, NULL, s_client, &client) == 0);
    sf_loop_start (loop);
    //  The kept request outlives its server and is freed when answered.
    assert (handler.kept);
    sf_http_destroy (&http);
    assert (!sf_http_req_connected (handler.kept));
    sf_http_respond (&handler.kept, 200, "text/plain", "late", 4, NULL);
    assert (!handler.kept);
    pthread_join (thread, NULL);

    const char *now = client.answers [0];
    assert (strstr (now, "HTTP/1.1 200"));
    assert (strstr (now, "Content-Type: application/json"));
    assert (strstr (now, "Retry-After: 1"));
    assert (strstr (now, "\"path\":\"/now/a b\""));
    assert (strstr (now, "\"query\":{\"x\":\"1\",\"y\":\"two/\"}"));
    assert (strstr (now, "\"token\":\"abc\""));
    assert (strstr (client.answers [1], "HTTP/1.1 201"));
    assert (strstr (client.answers [1], "later 5 hello"));
    assert (strstr (client.answers [2], "HTTP/1.1 413"));
    assert (strstr (client.answers [3], "HTTP/1.1 413"));
    const char *stream = client.answers [4];
    assert (strstr (stream, "HTTP/1.1 200"));
    assert (strstr (stream, "text/event-stream"));
    const char *one = strstr (stream, "data: one");
    const char *two = strstr (stream, "data: two");
    assert (one && two && one < two);

    sf_loop_destroy (&loop);
    close (pipe_fds [0]);
    close (pipe_fds [1]);
    if (verbose)
        printf ("OK\n");
    return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "k8s/rpc.h"

#define sizeof_field(type, member) sizeof(((type *) NULL)->member)

/* What a completion is about: every tag handed to gRPC is one of these, inside its owner. */
typedef enum TagKind {
        TAG_NEW_CALL,   /* grpc_server_request_call() matched a call */
        TAG_RECEIVED,   /* initial metadata sent, the request message received */
        TAG_SENT,       /* a stream message written */
        TAG_FINISHED,   /* the status (with a unary reply) sent */
        TAG_CLOSED,     /* the call is over on the server side (RECV_CLOSE_ON_SERVER) */
        TAG_SHUTDOWN,   /* a server's shutdown is complete */
        TAG_CLIENT,     /* a client call's one batch is complete */
} TagKind;

typedef struct Tag {
        TagKind kind;
        void *owner;
} Tag;

struct RpcLoop {
        grpc_completion_queue *cq;
        RpcServer *servers;
        unsigned clients; /* client calls in flight */
};

struct RpcServer {
        RpcLoop *loop;
        RpcServer *next;
        grpc_server *server;
        RpcHandler handler;
        void *userdata;
        Tag shutdown_tag;
        bool stopping, shut_down;
        unsigned calls; /* RpcCalls alive, the waiting one included */
};

struct RpcCall {
        RpcServer *server;
        grpc_call *call;
        grpc_call_details details;
        grpc_metadata_array metadata;
        grpc_byte_buffer *recv;
        grpc_byte_buffer *send;  /* the stream message in flight */
        grpc_byte_buffer *queued; /* the stream message waiting for it */
        grpc_byte_buffer *reply;  /* the unary reply in flight */
        grpc_slice status_details;
        bool has_status_details;
        int cancelled;
        Tag new_tag, recv_tag, sent_tag, finished_tag, closed_tag;
        unsigned pending;   /* batches in flight */
        bool accepted;      /* a call arrived (else this is the server's waiting request) */
        bool finished;      /* the status was sent */
        bool closed;        /* RECV_CLOSE_ON_SERVER completed */
        bool handed;        /* the handler has seen it and may keep it */
};

typedef struct ClientCall {
        RpcLoop *loop;
        Tag tag;
        grpc_channel *channel;
        grpc_call *call;
        grpc_byte_buffer *send, *recv;
        grpc_metadata_array initial, trailing;
        grpc_status_code status;
        grpc_slice details;
        rpc_client_done_t done;
        void *userdata;
} ClientCall;

static gpr_timespec deadline_in(int ms) {
        return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

static grpc_byte_buffer *buffer_new(const uint8_t *msg, size_t len) {
        grpc_slice s = grpc_slice_from_copied_buffer((const char *) msg, len);
        grpc_byte_buffer *b = grpc_raw_byte_buffer_create(&s, 1);
        grpc_slice_unref(s);
        return b;
}

/* The bytes of a received message, as one allocation (a message may arrive in several slices). */
static int buffer_read(grpc_byte_buffer *b, uint8_t **ret, size_t *ret_len) {
        grpc_byte_buffer_reader r;
        if (!grpc_byte_buffer_reader_init(&r, b))
                return -EBADMSG;
        grpc_slice s = grpc_byte_buffer_reader_readall(&r);
        grpc_byte_buffer_reader_destroy(&r);
        size_t len = GRPC_SLICE_LENGTH(s);
        uint8_t *p = malloc(len ?: 1);
        if (!p) {
                grpc_slice_unref(s);
                return -ENOMEM;
        }
        memcpy(p, GRPC_SLICE_START_PTR(s), len);
        grpc_slice_unref(s);
        *ret = p;
        *ret_len = len;
        return 0;
}

static void server_maybe_free(RpcServer *s);

static int server_request_next(RpcServer *s);

static void call_free(RpcCall *c) {
        RpcServer *s = c->server;
        if (c->call)
                grpc_call_unref(c->call);
        grpc_call_details_destroy(&c->details);
        grpc_metadata_array_destroy(&c->metadata);
        if (c->recv)
                grpc_byte_buffer_destroy(c->recv);
        if (c->send)
                grpc_byte_buffer_destroy(c->send);
        if (c->queued)
                grpc_byte_buffer_destroy(c->queued);
        if (c->reply)
                grpc_byte_buffer_destroy(c->reply);
        if (c->has_status_details)
                grpc_slice_unref(c->status_details);
        free(c);
        s->calls--;
        server_maybe_free(s);
}

/* A call is freed when gRPC holds none of its tags and it is over: the waiting request that never matched,
 * or an accepted call whose close arrived. */
static void call_maybe_free(RpcCall *c) {
        if (c->pending > 0)
                return;
        if (!c->accepted || c->closed)
                call_free(c);
}

static int call_start(RpcCall *c, const grpc_op *ops, size_t n, Tag *tag) {
        grpc_call_error e = grpc_call_start_batch(c->call, ops, n, tag, NULL);
        if (e != GRPC_CALL_OK)
                return log_debug_errno(EIO, "grpc_call_start_batch: error %d", (int) e);
        c->pending++;
        return 0;
}

static RpcCall *call_new(RpcServer *s) {
        RpcCall *c = calloc(1, sizeof(*c));
        if (!c)
                return NULL;
        c->server = s;
        grpc_call_details_init(&c->details);
        grpc_metadata_array_init(&c->metadata);
        c->new_tag = (Tag) {TAG_NEW_CALL, c};
        c->recv_tag = (Tag) {TAG_RECEIVED, c};
        c->sent_tag = (Tag) {TAG_SENT, c};
        c->finished_tag = (Tag) {TAG_FINISHED, c};
        c->closed_tag = (Tag) {TAG_CLOSED, c};
        s->calls++;
        return c;
}

static int server_request_next(RpcServer *s) {
        if (s->stopping)
                return 0;
        RpcCall *c = call_new(s);
        if (!c)
                return -ENOMEM;
        grpc_call_error e = grpc_server_request_call(s->server, &c->call, &c->details, &c->metadata, s->loop->cq,
                                                     s->loop->cq, &c->new_tag);
        if (e != GRPC_CALL_OK) {
                call_free(c);
                return log_debug_errno(EIO, "grpc_server_request_call: error %d", (int) e);
        }
        c->pending++;
        return 0;
}

static void call_accepted(RpcCall *c, bool ok) {
        if (!ok) /* the server is shutting down */
                return;
        c->accepted = true;
        (void) server_request_next(c->server);

        grpc_op ops[2] = {};
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[1].op = GRPC_OP_RECV_MESSAGE;
        ops[1].data.recv_message.recv_message = &c->recv;
        grpc_op close_op = {.op = GRPC_OP_RECV_CLOSE_ON_SERVER};
        close_op.data.recv_close_on_server.cancelled = &c->cancelled;
        if (call_start(c, &close_op, 1, &c->closed_tag) < 0) {
                /* without its close the call can never be freed safely: cancel it, gRPC ends it */
                grpc_call_cancel(c->call, NULL);
                c->closed = true;
                return;
        }
        if (call_start(c, ops, 2, &c->recv_tag) < 0)
                grpc_call_cancel(c->call, NULL);
}

static void call_received(RpcCall *c, bool ok) {
        if (!ok || !c->recv) {
                /* no request message: the client went away or half-closed without one */
                if (!c->closed)
                        (void) rpc_call_fail(c, RPC_STATUS_INVALID_ARGUMENT, "no request message");
                return;
        }
        _cleanup_free_ uint8_t *msg = NULL;
        size_t len;
        int r = buffer_read(c->recv, &msg, &len);
        grpc_byte_buffer_destroy(c->recv);
        c->recv = NULL;
        if (r < 0) {
                (void) rpc_call_fail(c, RPC_STATUS_INTERNAL, "cannot read the request");
                return;
        }
        _cleanup_free_ char *method = strndup((const char *) GRPC_SLICE_START_PTR(c->details.method),
                                              GRPC_SLICE_LENGTH(c->details.method));
        if (!method) {
                (void) rpc_call_fail(c, RPC_STATUS_INTERNAL, "out of memory");
                return;
        }
        c->handed = true;
        c->server->handler.request(c->server->userdata, c, method, msg, len);
}

static int stream_write(RpcCall *c) {
        grpc_op op = {.op = GRPC_OP_SEND_MESSAGE};
        op.data.send_message.send_message = c->send;
        return call_start(c, &op, 1, &c->sent_tag);
}

static void call_sent(RpcCall *c, bool ok) {
        grpc_byte_buffer_destroy(c->send);
        c->send = NULL;
        if (!ok || c->closed || c->finished)
                return;
        if (c->queued) {
                c->send = TAKE_PTR(c->queued);
                if (stream_write(c) < 0) {
                        grpc_byte_buffer_destroy(TAKE_PTR(c->send));
                        grpc_call_cancel(c->call, NULL);
                }
        }
}

static void call_closed(RpcCall *c) {
        c->closed = true;
        if (c->handed && !c->finished && c->server->handler.closed)
                c->server->handler.closed(c->server->userdata, c);
}

int rpc_call_stream_send(RpcCall *c, const uint8_t *msg, size_t len) {
        if (c->closed || c->finished)
                return -EPIPE;
        grpc_byte_buffer *b = buffer_new(msg, len);
        if (!b)
                return -ENOMEM;
        if (c->send) { /* one write at a time: the newest waits, an older waiting one is outdated */
                if (c->queued)
                        grpc_byte_buffer_destroy(c->queued);
                c->queued = b;
                return 0;
        }
        c->send = b;
        int r = stream_write(c);
        if (r < 0)
                grpc_byte_buffer_destroy(TAKE_PTR(c->send));
        return r;
}

bool rpc_call_stream_idle(const RpcCall *c) {
        return !c->send && !c->queued;
}

static int call_finish(RpcCall *c, int status, const char *message, const uint8_t *msg, size_t len) {
        if (c->finished || c->closed)
                return -EPIPE;
        grpc_op ops[2] = {};
        size_t n = 0;
        if (msg) {
                c->reply = buffer_new(msg, len);
                if (!c->reply)
                        return -ENOMEM;
                ops[n].op = GRPC_OP_SEND_MESSAGE;
                ops[n++].data.send_message.send_message = c->reply;
        }
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = (grpc_status_code) status;
        if (message) {
                c->status_details = grpc_slice_from_copied_string(message);
                c->has_status_details = true;
                ops[n].data.send_status_from_server.status_details = &c->status_details;
        }
        n++;
        /* a queued stream message is outdated by the end of the stream */
        if (c->queued)
                grpc_byte_buffer_destroy(TAKE_PTR(c->queued));
        int r = call_start(c, ops, n, &c->finished_tag);
        if (r < 0) {
                grpc_call_cancel(c->call, NULL);
                return r;
        }
        c->finished = true;
        return 0;
}

int rpc_call_reply(RpcCall *c, const uint8_t *msg, size_t len) {
        return call_finish(c, GRPC_STATUS_OK, NULL, msg, len);
}

int rpc_call_fail(RpcCall *c, int status, const char *message) {
        return call_finish(c, status, message, NULL, 0);
}

int rpc_loop_new(RpcLoop **ret) {
        RpcLoop *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        grpc_init();
        l->cq = grpc_completion_queue_create_for_next(NULL);
        if (!l->cq) {
                grpc_shutdown();
                free(l);
                return -ENOMEM;
        }
        *ret = l;
        return 0;
}

static void server_maybe_free(RpcServer *s) {
        if (!s->shut_down || s->calls > 0)
                return;
        RpcLoop *l = s->loop;
        for (RpcServer **p = &l->servers; *p; p = &(*p)->next)
                if (*p == s) {
                        *p = s->next;
                        break;
                }
        grpc_server_destroy(s->server);
        free(s);
}

int rpc_server_start(RpcLoop *l, const char *path, const RpcHandler *h, void *userdata, RpcServer **ret) {
        if (strlen(path) >= sizeof_field(struct sockaddr_un, sun_path))
                return -ENAMETOOLONG; /* gRPC would fail later, saying less */
        _cleanup_free_ char *addr = strdup_printf("unix:%s", path);
        if (!addr)
                return -ENOMEM;
        RpcServer *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->loop = l;
        s->handler = *h;
        s->userdata = userdata;
        s->shutdown_tag = (Tag) {TAG_SHUTDOWN, s};
        s->server = grpc_server_create(NULL, NULL);
        if (!s->server) {
                free(s);
                return -ENOMEM;
        }
        grpc_server_register_completion_queue(s->server, l->cq, NULL);
        (void) unlink(path); /* a socket left by an earlier run (or a kubelet that cleaned up) */
        grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
        int port = grpc_server_add_http2_port(s->server, addr, creds);
        grpc_server_credentials_release(creds);
        if (port == 0) {
                grpc_server_destroy(s->server);
                free(s);
                return log_debug_errno(EADDRNOTAVAIL, "cannot listen on %s", addr);
        }
        grpc_server_start(s->server);
        s->next = l->servers;
        l->servers = s;
        int r = server_request_next(s);
        if (r < 0) {
                rpc_server_stop(s);
                return r;
        }
        *ret = s;
        return 0;
}

void rpc_server_stop(RpcServer *s) {
        if (!s || s->stopping)
                return;
        s->stopping = true;
        grpc_server_shutdown_and_notify(s->server, s->loop->cq, &s->shutdown_tag);
        grpc_server_cancel_all_calls(s->server);
}

static bool server_alive(const RpcLoop *l, const RpcServer *s) {
        for (const RpcServer *i = l->servers; i; i = i->next)
                if (i == s)
                        return true;
        return false;
}

int rpc_server_stop_wait(RpcServer *s, int timeout_ms) {
        RpcLoop *l = s->loop;
        rpc_server_stop(s);
        gpr_timespec end = deadline_in(timeout_ms);
        while (server_alive(l, s)) {
                if (gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), end) > 0)
                        return -ETIMEDOUT;
                int r = rpc_loop_run_once(l, 50);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void client_free(ClientCall *cc) {
        if (cc->call)
                grpc_call_unref(cc->call);
        if (cc->channel)
                grpc_channel_destroy(cc->channel);
        if (cc->send)
                grpc_byte_buffer_destroy(cc->send);
        if (cc->recv)
                grpc_byte_buffer_destroy(cc->recv);
        grpc_metadata_array_destroy(&cc->initial);
        grpc_metadata_array_destroy(&cc->trailing);
        grpc_slice_unref(cc->details);
        cc->loop->clients--;
        free(cc);
}

static void client_done(ClientCall *cc, bool ok) {
        _cleanup_free_ uint8_t *msg = NULL;
        size_t len = 0;
        _cleanup_free_ char *details = strndup((const char *) GRPC_SLICE_START_PTR(cc->details),
                                               GRPC_SLICE_LENGTH(cc->details));
        int status = ok ? (int) cc->status : RPC_STATUS_UNAVAILABLE;
        if (status == GRPC_STATUS_OK && cc->recv && buffer_read(cc->recv, &msg, &len) < 0)
                status = RPC_STATUS_INTERNAL;
        if (cc->done)
                cc->done(cc->userdata, status, details, msg, len);
        client_free(cc);
}

int rpc_client_call(RpcLoop *l, const char *socket_path, const char *method, const uint8_t *msg, size_t len,
                    int timeout_ms, rpc_client_done_t done, void *userdata) {
        _cleanup_free_ char *addr = strdup_printf("unix:%s", socket_path);
        if (!addr)
                return -ENOMEM;
        ClientCall *cc = calloc(1, sizeof(*cc));
        if (!cc)
                return -ENOMEM;
        cc->loop = l;
        l->clients++;
        cc->tag = (Tag) {TAG_CLIENT, cc};
        cc->done = done;
        cc->userdata = userdata;
        cc->details = grpc_empty_slice();
        grpc_metadata_array_init(&cc->initial);
        grpc_metadata_array_init(&cc->trailing);
        grpc_channel_credentials *creds = grpc_insecure_credentials_create();
        cc->channel = grpc_channel_create(addr, creds, NULL);
        grpc_channel_credentials_release(creds);
        if (!cc->channel) {
                cc->done = NULL;
                client_free(cc);
                return -ENOMEM;
        }
        grpc_slice m = grpc_slice_from_copied_string(method);
        cc->call = grpc_channel_create_call(cc->channel, NULL, GRPC_PROPAGATE_DEFAULTS, l->cq, m, NULL,
                                            deadline_in(timeout_ms), NULL);
        grpc_slice_unref(m);
        cc->send = buffer_new(msg, len);
        if (!cc->call || !cc->send) {
                cc->done = NULL;
                client_free(cc);
                return -ENOMEM;
        }
        grpc_op ops[6] = {};
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[1].op = GRPC_OP_SEND_MESSAGE;
        ops[1].data.send_message.send_message = cc->send;
        ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[3].data.recv_initial_metadata.recv_initial_metadata = &cc->initial;
        ops[4].op = GRPC_OP_RECV_MESSAGE;
        ops[4].data.recv_message.recv_message = &cc->recv;
        ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        ops[5].data.recv_status_on_client.trailing_metadata = &cc->trailing;
        ops[5].data.recv_status_on_client.status = &cc->status;
        ops[5].data.recv_status_on_client.status_details = &cc->details;
        grpc_call_error e = grpc_call_start_batch(cc->call, ops, ELEMENTSOF(ops), &cc->tag, NULL);
        if (e != GRPC_CALL_OK) {
                cc->done = NULL;
                client_free(cc);
                return log_debug_errno(EIO, "grpc_call_start_batch (client): error %d", (int) e);
        }
        return 0;
}

static void dispatch(void *tagp, bool ok) {
        Tag *tag = tagp;
        if (tag->kind == TAG_SHUTDOWN) {
                RpcServer *s = tag->owner;
                s->shut_down = true;
                server_maybe_free(s);
                return;
        }
        if (tag->kind == TAG_CLIENT) {
                client_done(tag->owner, ok);
                return;
        }
        RpcCall *c = tag->owner;
        c->pending--;
        switch (tag->kind) {
        case TAG_NEW_CALL:
                call_accepted(c, ok);
                break;
        case TAG_RECEIVED:
                call_received(c, ok);
                break;
        case TAG_SENT:
                call_sent(c, ok);
                break;
        case TAG_FINISHED:
                if (c->reply)
                        grpc_byte_buffer_destroy(TAKE_PTR(c->reply));
                break;
        case TAG_CLOSED:
                call_closed(c);
                break;
        default:
                break;
        }
        call_maybe_free(c);
}

int rpc_loop_run_once(RpcLoop *l, int timeout_ms) {
        gpr_timespec deadline = deadline_in(timeout_ms);
        for (;;) {
                grpc_event ev = grpc_completion_queue_next(l->cq, deadline, NULL);
                if (ev.type == GRPC_QUEUE_TIMEOUT)
                        return 0;
                if (ev.type == GRPC_QUEUE_SHUTDOWN)
                        return -ESHUTDOWN;
                dispatch(ev.tag, ev.success);
                /* drain what is ready without waiting again */
                deadline = gpr_time_0(GPR_CLOCK_MONOTONIC);
        }
}

void rpc_loop_free(RpcLoop *l) {
        if (!l)
                return;
        for (RpcServer *s = l->servers; s; s = s->next)
                rpc_server_stop(s);
        while (l->servers || l->clients > 0)
                if (rpc_loop_run_once(l, 1000) < 0)
                        break;
        grpc_completion_queue_shutdown(l->cq);
        while (grpc_completion_queue_next(l->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type != GRPC_QUEUE_SHUTDOWN)
                ;
        grpc_completion_queue_destroy(l->cq);
        free(l);
        grpc_shutdown();
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A small gRPC layer over gRPC core's completion-queue API: servers on unix sockets whose calls are
 * handed to the program as bytes (unary calls answered once, server streams written as often as the
 * program wants), and unary client calls. Everything runs on one completion queue that the program
 * drives with rpc_loop_run_once() from one thread; no callback runs on a gRPC thread. Messages are
 * opaque here: the program encodes and decodes them (protobuf-c).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct RpcLoop RpcLoop;
typedef struct RpcServer RpcServer;
typedef struct RpcCall RpcCall;

/* grpc_status_code values the plugin answers with */
#define RPC_STATUS_INVALID_ARGUMENT 3
#define RPC_STATUS_NOT_FOUND        5
#define RPC_STATUS_RESOURCE_EXHAUSTED 8
#define RPC_STATUS_FAILED_PRECONDITION 9
#define RPC_STATUS_INTERNAL         13
#define RPC_STATUS_UNAVAILABLE      14
#define RPC_STATUS_UNIMPLEMENTED    12

typedef struct RpcHandler {
        /* A request arrived: method ("/v1beta1.DevicePlugin/Allocate") and its message. The handler
         * answers with rpc_call_reply()/rpc_call_fail() now, or keeps the call for a stream
         * (rpc_call_stream_send(), ended with rpc_call_fail()/rpc_call_finish()). */
        void (*request)(void *userdata, RpcCall *call, const char *method, const uint8_t *msg, size_t len);
        /* A call the handler kept ended (client gone, server shut down): the call must not be used after. */
        void (*closed)(void *userdata, RpcCall *call);
} RpcHandler;

int rpc_loop_new(RpcLoop **ret);
/* Shuts every server down, waits for their calls and frees everything. */
void rpc_loop_free(RpcLoop *l);

/* Serve on the unix socket at path (an existing socket file there is replaced). -ENAMETOOLONG: the path does
 * not fit a socket address (108 bytes). */
int rpc_server_start(RpcLoop *l, const char *path, const RpcHandler *h, void *userdata, RpcServer **ret);
/* Cancel its calls (their closed() runs from the loop) and stop it; it is freed once gRPC is done. */
void rpc_server_stop(RpcServer *s);
/* The same, and run the loop until gRPC is done with it (at most timeout_ms): gRPC removes the socket file
 * when the listener goes, so a new server on the same path must wait for that. */
int rpc_server_stop_wait(RpcServer *s, int timeout_ms);

/* Process what the completion queue has within timeout_ms (0: only what is ready). */
int rpc_loop_run_once(RpcLoop *l, int timeout_ms);

/* Unary answers; each ends the call. */
int rpc_call_reply(RpcCall *c, const uint8_t *msg, size_t len);
int rpc_call_fail(RpcCall *c, int status, const char *message);
/* A message on a server stream: sent now, or after the one in flight (only the latest waits). */
int rpc_call_stream_send(RpcCall *c, const uint8_t *msg, size_t len);
/* Whether every message given to rpc_call_stream_send() has been written out. */
bool rpc_call_stream_idle(const RpcCall *c);

/* A unary call as a client (the Registration): done() gets the status (0 OK), its message and the reply,
 * from the loop, once. */
typedef void (*rpc_client_done_t)(void *userdata, int status, const char *details, const uint8_t *msg, size_t len);
int rpc_client_call(RpcLoop *l, const char *socket_path, const char *method, const uint8_t *msg, size_t len,
                    int timeout_ms, rpc_client_done_t done, void *userdata);

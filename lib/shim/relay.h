/* lib/shim/relay.h: containers, processes and the stream relay (relay.c).
 * Above state.h; knows nothing of lifecycle or clients: those call it. */
#pragma once

#include "state.h"

typedef struct _Relay Relay;

/* A recovering shim inherits the rootfs and volume mounts of the one that
 * died (every container directory in the share). */
Relay *relay_new(Shim *s);
void relay_free(Relay *rl);
/* TRUE for the methods relay_request() answers: container_add and those
 * the contract marks KV_RELAYED. */
gboolean relay_handles(const KvMethod *m);
/* Decode, map streams, forward to the agent, answer the client. */
void relay_request(Relay *rl, KvConn *client, guint32 id, const KvMethod *m, JsonObject *params);
void relay_client_frame(Relay *rl, KvConn *client, const KvFrame *f);
/* A client connection closed: its stdin routes end, its output goes on into
 * pipes it passed, and the execs it started and did not see exit are
 * killed (SIGKILL): a process outlives no client that did not wait for it. */
void relay_client_closed(Relay *rl, KvConn *client);
void relay_agent_frame(Relay *rl, const KvFrame *f);
/* The agent channel is gone: end every stream towards clients. */
void relay_agent_lost(Relay *rl);
/* Unmount every container's rootfs and volumes (sandbox teardown). */
void relay_unmount_all(Relay *rl);
/* Is there a container of that id in this sandbox (its rootfs mounted)? */
gboolean relay_has_container(Relay *rl, const char *cid);

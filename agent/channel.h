/* agent/channel.h: the agent's end of the host channel.
 *
 * In a VM that is the virtio-serial port named AGENT_CHANNEL_PORT. The
 * channel outlives host connections: when the host side goes away the
 * agent closes the port, backs off (50 ms doubling to 1 s) and reopens it,
 * and serves the next host connection with a fresh KvConn (new HELLO
 * exchange). While no host is connected it holds the port open and wakes
 * up early on the SIGIO the driver sends when the host connects.
 */
#pragma once

#include "proto.h"

#define AGENT_CHANNEL_PORT "io.katavm.agent.0"

typedef void (*AgentChannelOpenedFunc)(gpointer user);

/* Finds the port named `name` (waiting for it to appear, at most 30 s,
 * else a fatal error), and serves the protocol on it from then on.
 * first_open runs once, right after the port was first opened and, if a
 * host is there, our HELLO queued. */
void agent_channel_start_port(const char *name, AgentChannelOpenedFunc first_open, gpointer user);
/* Test mode: serve one connection on an open fd (a socket); the process
 * ends when the peer goes away. */
void agent_channel_start_fd(int fd);
/* The host connection state may have changed (SIGIO): check now instead
 * of at the end of the backoff. */
void agent_channel_kick(void);
/* The current connection once the host said HELLO, else NULL. */
KvConn *agent_channel_conn(void);

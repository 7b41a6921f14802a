/* lib/shim/net.h: the sandbox's network (net.c), Kata's "tcfilter" model.
 * Beside hotplug.c, above state.h: hotplug.c owns the Net (its state comes
 * back with hotplug_restore) and lifecycle.c calls it where the VM boots
 * and where the sandbox's state is removed.
 *
 * For every interface with an address (lo excepted) of the network
 * namespace named by the config (netns), the shim makes a tap in the host
 * namespace, attaches it to the VM with the interface's MAC, moves it into
 * that namespace, redirects all traffic both ways between the interface
 * and the tap with tc (ingress qdiscs, u32 match-all filters, mirred
 * egress redirect), and has the agent give the guest interface the
 * interface's addresses, MTU, routes and static neighbours. Everything
 * goes through libnl; nothing runs ip or tc. */
#pragma once

#include "state.h"

typedef struct _Net Net;

/* Registers its part of state.json with s (the netns and the taps). */
Net *net_new(Shim *s);
void net_free(Net *n);
/* Take over the taps a previous shim recorded in its state. */
void net_restore(Net *n, const KvShimStateResult *st);
/* Before the VM starts: check the namespace and find its interfaces.
 * KV_E_NOT_FOUND when the path does not exist, KV_E_INVALID when it is no
 * network namespace or has no interface with an address. No-op without a
 * netns in the config. */
gboolean net_prepare(Net *n, GError **error);
/* Undo a net_prepare that made nothing yet (no tap): a pooled VM whose
 * adopt failed stays as it was booted, without a network (and without the
 * held fd). */
void net_forget(Net *n);
/* fd (taken over) is the config's netns as a client opened it: while this
 * shim runs, the namespace is entered through it, not through the path. */
void net_hold(Net *n, int fd);
/* Once the agent answered: taps, tc redirects, the guest's interfaces. On
 * failure what was made stays recorded for net_teardown. */
gboolean net_attach(Net *n, GError **error);
/* The VM is gone: remove the taps and the qdiscs (with their filters) that
 * the shim made; the namespace's own interfaces stay as they were. Without
 * a record in memory (--cleanup), the last state.json says what was made. */
void net_teardown(Net *n);
/* Hotplug: the interface `name` of the namespace reaches the guest as at
 * create (tap, redirects, the guest interface's configuration). *mac_out:
 * its MAC, the NIC's identity. On failure nothing of it stays. */
gboolean net_add_iface(Net *n, const char *name, char **mac_out, GError **error);
/* For `state` answers: a sentence for each interface of the namespace (or
 * the namespace itself) that the sandbox was given and that is gone now,
 * or a tap that is no longer there; NULL when all is in place. */
char **net_warnings(Net *n);
/* The NIC with this MAC is one of the namespace's (a tap the shim made). */
gboolean net_owns_mac(Net *n, const char *mac);
/* After its NIC was detached: remove its tap and the interface's redirect. */
void net_remove_mac(Net *n, const char *mac);

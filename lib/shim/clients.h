/* lib/shim/clients.h: the shim's clients (clients.c): the listening
 * socket, one KvConn per client, requests dispatched by method (the
 * contract's kv_method_lookup) to the layers below. */
#pragma once

#include "lifecycle.h"

typedef struct _Clients Clients;

Clients *clients_new(Shim *s, Lifecycle *lc, Relay *rl, Hotplug *hp);
void clients_free(Clients *cl);
/* Listen on the sandbox's shim socket (0600). */
gboolean clients_listen(Clients *cl, GError **error);

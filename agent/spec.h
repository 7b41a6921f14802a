/* agent/spec.h: leftover JSON helpers of the RPC handlers, until they
 * decode their params with the contract (lib/proto/msg.h). The OCI spec
 * parser is lib/proto/ocispec.c. */
#pragma once

#include "ocispec.h"

/* Reads an optional u32 member (absent = 0). */
gboolean agent_json_get_u32(JsonObject *o, const char *name, const char *what, guint32 *out,
                            GError **error);
/* Reads a required string member that is a valid id (container or exec
 * id: 1-64 of [A-Za-z0-9_.-], not starting with '.' or '-'). */
const char *agent_json_get_id(JsonObject *o, const char *name, GError **error);
/* Optional string member: NULL when absent, error when not a string. */
gboolean agent_json_get_opt_string(JsonObject *o, const char *name, const char **out,
                                   GError **error);
gboolean agent_json_get_opt_bool(JsonObject *o, const char *name, gboolean *out, GError **error);
gboolean agent_json_get_int(JsonObject *o, const char *name, gint64 min, gint64 max,
                            gboolean required, gint64 *out, GError **error);

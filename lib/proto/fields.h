/* lib/proto/fields.h: the one JSON accessor kit of the project. A C struct
 * is described by a table of fields (wire name, type, offset, bounds); one
 * decoder checks a JSON object against the table while filling the struct,
 * one encoder writes the struct back. The protocol's envelopes (proto.c),
 * every message of the contract (msg.c) and the host's JSON files use it.
 *
 * Decoding is the security boundary for what the guest (and the shim's
 * clients) send: every field is type- and range-checked, strings can be
 * bounded, ids are checked against the id rules before anything uses them
 * in a path, unknown fields are ignored. Errors are KV_E_INVALID in
 * KV_ERROR_DOMAIN, naming the document and the field. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* ---- one error space ----
 * Error codes in RESPONSE frames are these, on every hop (agent -> shim ->
 * library). They are the public katavm_code values of
 * include/katavm/katavm.h (lib/error.c checks that at compile time); the
 * agent and the protocol code use these names because they must not include
 * host headers. */
typedef enum {
  KV_E_OK = 0,
  KV_E_INVALID = -1,      /* malformed params, spec or argument (message names it) */
  KV_E_NOT_FOUND = -2,    /* no such container / process / device */
  KV_E_EXISTS = -3,       /* id or stream id already in use */
  KV_E_IO = -4,           /* a system call failed */
  KV_E_VMM = -5,          /* libvirt / QEMU failure */
  KV_E_AGENT = -6,        /* the guest agent failed or misbehaved */
  KV_E_PROTOCOL = -7,     /* malformed or incompatible protocol data */
  KV_E_STATE = -8,        /* not valid in the current state */
  KV_E_TIMEOUT = -9,      /* did not finish in time */
  KV_E_UNSUPPORTED = -10, /* unknown method, feature not available */
  KV_E_CORRUPT = -11,     /* on-disk state unreadable */
} KvCode;
#define KV_E_MIN KV_E_CORRUPT
/* Errors with a KvCode, on either side of the wire. */
#define KV_ERROR_DOMAIN (kv_code_error_quark())
GQuark kv_code_error_quark(void);

/* ---- field tables ---- */
typedef enum {
  KV_T_BOOL,   /* gboolean */
  KV_T_INT,    /* gint64 within [min, max] */
  KV_T_U32,    /* guint32 (stream ids, counts) within [min, max] */
  KV_T_STR,    /* char * (NULL when absent) */
  KV_T_ID,     /* char *, a container/exec/sandbox id (kv_id_valid) */
  KV_T_STRV,   /* char ** NULL-terminated (NULL when absent) */
  KV_T_OBJECT, /* JsonObject * kept as is (an OCI spec or process: lib/proto/ocispec) */
  KV_T_STRUCT, /* an embedded struct described by `sub` */
  KV_T_LIST,   /* GPtrArray * of structs described by `sub` */
  KV_T_INTV,   /* GArray * of gint64 within [min, max] */
} KvFieldType;

typedef enum {
  KV_F_REQUIRED = 1 << 0, /* absent is an error */
  KV_F_NONEMPTY = 1 << 1, /* STR/ID/STRV: not "" / not empty */
  KV_F_OMIT = 1 << 2,     /* INT/U32/BOOL: left out on the wire when equal to def */
} KvFieldFlags;

typedef struct _KvMsgDesc KvMsgDesc;

typedef struct {
  const char *name; /* on the wire */
  KvFieldType type;
  guint flags;
  gsize offset;
  gint64 min, max;      /* INT/U32/INTV bounds (both 0: the type's full range);
                         * STR/ID/STRV: max = longest string in bytes (0: no limit);
                         * LIST: max = most elements (0: no limit) */
  gint64 def;           /* INT/U32/BOOL value when absent */
  const KvMsgDesc *sub; /* STRUCT/LIST */
} KvField;

struct _KvMsgDesc {
  const char *name; /* for messages: "container_start params" */
  gsize size;
  const KvField *fields; /* terminated by a field with name NULL */
};

/* Tables for other JSON documents (state files, configs) are written with
 * these, as lib/proto/msg.c writes the messages':
 *   static const KvField my_fields[] = {
 *       KV_FIELD(MyStruct, "name", KV_T_STR, KV_F_REQUIRED, name), ..., {NULL}};
 * (after the member: .min/.max/.def/.sub as designated initializers). */
#define KV_FIELD(T, wire, type, flags, member, ...)                                                \
  { wire, type, flags, G_STRUCT_OFFSET(T, member), __VA_ARGS__ }

/* Decode `o` into the struct `out` (zeroed first) as `d` says. On failure
 * `out` is cleared and the error names the message and field. o may be NULL
 * (an absent object: only defaults). */
gboolean kv_msg_decode(const KvMsgDesc *d, JsonObject *o, gpointer out, GError **error);
/* The same with `where` instead of d->name at the start of error messages. */
gboolean kv_msg_decode_as(const KvMsgDesc *d, JsonObject *o, gpointer out, const char *where,
                          GError **error);
/* Encode the struct `in` as a new JSON object. Absent optional strings,
 * lists and objects (NULL) are left out. */
JsonObject *kv_msg_encode(const KvMsgDesc *d, gconstpointer in);
/* Free what kv_msg_decode() allocated in `m` (strings, lists, objects) and
 * zero it. Safe on a zeroed struct. */
void kv_msg_clear(const KvMsgDesc *d, gpointer m);

/* Ids: 1..64 characters of [A-Za-z0-9_.-], starting with a letter or
 * digit, never "..". The rule of include/katavm/katavm.h (KATAVM_ID_MAX). */
#define KV_ID_MAX 64u
gboolean kv_id_valid(const char *id, const char *what, GError **error);

G_END_DECLS

/* lib/error.c: katavm_error, the public error object, and the mapping from
 * internal GErrors (protocol, vmm, I/O) to public katavm codes. */
#include <errno.h>
#include <gio/gio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "msg.h"
#include "proto.h"
#include "vmm.h"

/* One error space: the protocol's codes are the public ones. */
G_STATIC_ASSERT((int)KV_E_INVALID == (int)KATAVM_E_INVALID);
G_STATIC_ASSERT((int)KV_E_NOT_FOUND == (int)KATAVM_E_NOT_FOUND);
G_STATIC_ASSERT((int)KV_E_EXISTS == (int)KATAVM_E_EXISTS);
G_STATIC_ASSERT((int)KV_E_IO == (int)KATAVM_E_IO);
G_STATIC_ASSERT((int)KV_E_VMM == (int)KATAVM_E_VMM);
G_STATIC_ASSERT((int)KV_E_AGENT == (int)KATAVM_E_AGENT);
G_STATIC_ASSERT((int)KV_E_PROTOCOL == (int)KATAVM_E_PROTOCOL);
G_STATIC_ASSERT((int)KV_E_STATE == (int)KATAVM_E_STATE);
G_STATIC_ASSERT((int)KV_E_TIMEOUT == (int)KATAVM_E_TIMEOUT);
G_STATIC_ASSERT((int)KV_E_UNSUPPORTED == (int)KATAVM_E_UNSUPPORTED);
G_STATIC_ASSERT((int)KV_E_CORRUPT == (int)KATAVM_E_CORRUPT);
G_STATIC_ASSERT((int)KV_E_MIN == (int)KATAVM_E_CORRUPT);

G_DEFINE_QUARK(katavm - error - quark, kv_error)

int katavm_error_code(const katavm_error *e) {
  return e ? e->code : 0;
}

const char *katavm_error_message(const katavm_error *e) {
  return e && e->message ? e->message : "";
}

void katavm_error_free(katavm_error *e) {
  if (!e)
    return;
  free(e->message);
  free(e);
}

const char *katavm_code_name(int code) {
  switch (code) {
  case KATAVM_OK:
    return "ok";
  case KATAVM_E_INVALID:
    return "invalid argument";
  case KATAVM_E_NOT_FOUND:
    return "not found";
  case KATAVM_E_EXISTS:
    return "already exists";
  case KATAVM_E_IO:
    return "I/O error";
  case KATAVM_E_VMM:
    return "VMM error";
  case KATAVM_E_AGENT:
    return "agent error";
  case KATAVM_E_PROTOCOL:
    return "protocol error";
  case KATAVM_E_STATE:
    return "invalid state";
  case KATAVM_E_TIMEOUT:
    return "timed out";
  case KATAVM_E_UNSUPPORTED:
    return "unsupported";
  case KATAVM_E_CORRUPT:
    return "corrupt state";
  default:
    return "unknown error";
  }
}

void katavm_free(void *p) {
  free(p);
}

void katavm_strv_free(char **v) {
  if (!v)
    return;
  for (char **p = v; *p; p++)
    free(*p);
  free(v);
}

static int set_message(katavm_error **err, int code, const char *msg) {
  if (err) {
    katavm_error *e = calloc(1, sizeof(*e));
    if (e) {
      e->code = code;
      e->message = strdup(msg ? msg : katavm_code_name(code));
      *err = e;
    }
  }
  return code;
}

int kv_error_set(katavm_error **err, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  return set_message(err, code, msg);
}

int kv_error_code_of(const GError *e) {
  if (!e)
    return KATAVM_E_IO;
  if (e->domain == KV_ERROR || e->domain == KV_ERROR_DOMAIN)
    return e->code < 0 && e->code >= KV_E_MIN ? e->code : KATAVM_E_IO;
  if (e->domain == KV_PROTO_ERROR) {
    switch (e->code) {
    case KV_PROTO_ERROR_TIMEOUT:
      return KATAVM_E_TIMEOUT;
    case KV_PROTO_ERROR_CLOSED:
      return KATAVM_E_AGENT;
    case KV_PROTO_ERROR_REMOTE: {
      /* The shim answers with katavm codes: keep them. */
      int rc = kv_remote_error_code(e);
      return (rc < 0 && rc >= KATAVM_E_CORRUPT) ? rc : KATAVM_E_AGENT;
    }
    default:
      return KATAVM_E_PROTOCOL;
    }
  }
  if (e->domain == KV_VMM_ERROR) {
    switch (e->code) {
    case KV_VMM_ERROR_INVALID:
      return KATAVM_E_INVALID;
    case KV_VMM_ERROR_NOT_FOUND:
      return KATAVM_E_NOT_FOUND;
    case KV_VMM_ERROR_UNSUPPORTED:
      return KATAVM_E_UNSUPPORTED;
    case KV_VMM_ERROR_TIMEOUT:
      return KATAVM_E_TIMEOUT;
    default:
      return KATAVM_E_VMM;
    }
  }
  if (e->domain == G_FILE_ERROR)
    return e->code == G_FILE_ERROR_NOENT ? KATAVM_E_NOT_FOUND : KATAVM_E_IO;
  if (e->domain == G_IO_ERROR) {
    switch (e->code) {
    case G_IO_ERROR_NOT_FOUND:
      return KATAVM_E_NOT_FOUND;
    case G_IO_ERROR_EXISTS:
      return KATAVM_E_EXISTS;
    case G_IO_ERROR_TIMED_OUT:
      return KATAVM_E_TIMEOUT;
    case G_IO_ERROR_INVALID_ARGUMENT:
      return KATAVM_E_INVALID;
    default:
      return KATAVM_E_IO;
    }
  }
  if (e->domain == JSON_PARSER_ERROR)
    return KATAVM_E_CORRUPT;
  return KATAVM_E_IO;
}

int kv_error_propagate(katavm_error **err, const GError *gerr) {
  int code = kv_error_code_of(gerr);
  const char *msg = gerr ? gerr->message : NULL;
  if (gerr && g_error_matches(gerr, KV_PROTO_ERROR, KV_PROTO_ERROR_REMOTE))
    msg = kv_remote_error_message(gerr);
  return set_message(err, code, msg);
}

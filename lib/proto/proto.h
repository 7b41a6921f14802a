/* lib/proto/proto.h: the katavm wire protocol, shared by host (lib/, shim)
 * and guest (agent/). This file is the contract: every frame type and every
 * RPC method the host may ask of the shim or the agent is defined here.
 *
 * Wire format: a 12-byte header, all integers big-endian,
 *   u16 magic (0x4b56, "KV") | u8 type | u8 flags | u32 stream | u32 length
 * followed by `length` payload bytes, length <= KV_FRAME_MAX_PAYLOAD.
 *
 * Frame types:
 *   HELLO    stream 0, JSON {"proto":N,"role":"agent|shim|client","version":"x.y.z",
 *            "features":[name...]} First frame in each direction. A peer whose
 *            "proto" differs from KV_PROTO_VERSION is rejected with a clear
 *            error; "features" (optional, at most KV_HELLO_MAX_FEATURES) names
 *            what the sender offers beyond the base protocol (lib/proto/msg.h
 *            lists them), so that a newer side can tell what an older one does.
 *   REQUEST  stream 0, JSON {"id":u32,"method":"name","params":{...}}
 *   RESPONSE stream 0, JSON {"id":u32,"result":{...}} or
 *                           {"id":u32,"error":{"code":int,"message":"..."}}
 *   DATA     stream != 0, raw bytes (stdio); never base64 in JSON.
 *   CREDIT   stream != 0, payload exactly 4 bytes: u32 BE window increment.
 *            A sender may have at most the granted window of DATA bytes in
 *            flight per stream; the initial window is implicit
 *            (KV_STREAM_INITIAL_WINDOW out of the guest, KV_STDIN_INITIAL_WINDOW
 *            into it).
 *   EOF      stream != 0, empty payload: no more DATA in this direction.
 *   EVENT    stream 0, JSON {"event":"name",...}: unsolicited notification.
 * flags must be 0 (reserved).
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define KV_PROTO_VERSION 2
#define KV_FRAME_MAGIC 0x4b56u
#define KV_FRAME_HDR_LEN 12u
#define KV_FRAME_MAX_PAYLOAD (1024u * 1024u)
/* 2 MiB: the credit round trip through QEMU is long under TCG, and with
 * 256 KiB the guest spent its time waiting for credit (bench/exec: 146
 * MB/s at 256 KiB, 223 at 1 MiB, 284 at 2 MiB, 301 at 4 MiB). It bounds
 * what a slow reader makes the shim and the library hold per stream; the
 * shim grows the window of a reader that keeps up (KV_STREAM_MAX_WINDOW). */
#define KV_STREAM_INITIAL_WINDOW (2048u * 1024u)
/* Receivers of guest output grant credit back in batches of at least this
 * much (or once all they got is passed on): each CREDIT costs the guest an
 * interrupt and a wake-up of its agent. */
#define KV_OUTPUT_CREDIT_BATCH (KV_STREAM_INITIAL_WINDOW / 4)
/* A receiver may grant more than it was sent, growing a stream's window
 * beyond the initial one; the shim does so, up to this, for output that its
 * reader takes as fast as it comes (lib/shim/relay.c). */
#define KV_STREAM_MAX_WINDOW (8192u * 1024u)
/* stdin (host -> guest) keeps a smaller window: the agent holds what it
 * received until the process reads it, in guest memory. */
#define KV_STDIN_INITIAL_WINDOW (256u * 1024u)
#define KV_METHOD_MAX_LEN 64u

typedef enum {
  KV_FRAME_HELLO = 1,
  KV_FRAME_REQUEST = 2,
  KV_FRAME_RESPONSE = 3,
  KV_FRAME_DATA = 4,
  KV_FRAME_CREDIT = 5,
  KV_FRAME_EOF = 6,
  KV_FRAME_EVENT = 7,
} KvFrameType;

/* Error domain for protocol failures (GError). */
#define KV_PROTO_ERROR (kv_proto_error_quark())
GQuark kv_proto_error_quark(void);
typedef enum {
  KV_PROTO_ERROR_BAD_MAGIC,
  KV_PROTO_ERROR_BAD_TYPE,
  KV_PROTO_ERROR_BAD_FLAGS,
  KV_PROTO_ERROR_TOO_LARGE,
  KV_PROTO_ERROR_BAD_STREAM,
  KV_PROTO_ERROR_BAD_PAYLOAD,
  KV_PROTO_ERROR_VERSION,
  KV_PROTO_ERROR_CLOSED,
  KV_PROTO_ERROR_TIMEOUT,
  KV_PROTO_ERROR_REMOTE, /* the peer answered a request with an error */
  KV_PROTO_ERROR_FLOW,   /* peer sent DATA beyond its window */
} KvProtoError;

/* ---- what travels on the frames ----
 * The RPC methods, their params and results, the error codes and the HELLO
 * features are the contract of lib/proto/msg.h: one struct and field table
 * per message there, nothing spelled here.
 *
 * Paths: the host bind-mounts each container's rootfs at
 * SHARED/containers/<container_id>/rootfs; the guest sees SHARED at
 * KV_GUEST_SHARED_DIR (9p tag "katavmshared").
 *
 * Streams: a process's stdio travels as DATA frames on stream ids chosen by
 * the requester (non-zero, unique per connection while in use): stdin
 * (host -> guest), stdout and stderr (guest -> host); for a TTY process
 * stdout carries the terminal output and stderr is unused (0). Every stream
 * starts with its direction's initial window of credit (kv_window_init);
 * the receiver sends CREDIT as it consumes; EOF ends a direction (host EOF
 * on stdin closes the process's stdin). The guest sends EOF on
 * stdout/stderr after the last byte, before the process's exit is
 * reported. A stream id of 0 means "not connected" (/dev/null in the
 * guest). */
#define KV_GUEST_SHARED_DIR "/run/katavm/shared"

/* ---- one decoded frame ---- */
typedef struct {
  KvFrameType type;
  guint8 flags;
  guint32 stream;
  GBytes *payload; /* never NULL; may be empty */
} KvFrame;

void kv_frame_clear(KvFrame *f);

/* Encode a frame header + payload. Fails (returns NULL) when len exceeds
 * KV_FRAME_MAX_PAYLOAD or the type/stream combination is invalid. */
GBytes *kv_frame_encode(KvFrameType type, guint32 stream, const void *data, gsize len,
                        GError **error);
/* Only the header of such a frame, for a payload of len bytes that the
 * caller sends right after it (same checks as kv_frame_encode). */
GBytes *kv_frame_encode_header(KvFrameType type, guint32 stream, gsize len, GError **error);
/* Encode a JSON node (object) as a HELLO/REQUEST/RESPONSE/EVENT frame. */
GBytes *kv_frame_encode_json(KvFrameType type, JsonNode *node, GError **error);

/* ---- incremental decoder ----
 * Feed it bytes as they arrive; pull complete frames out. It validates every
 * header field and JSON payload shape before handing a frame out. Memory is
 * bounded: at most one frame (header + KV_FRAME_MAX_PAYLOAD) is buffered plus
 * whatever a single feed adds; a feed that would push the buffer beyond
 * 2 * (KV_FRAME_HDR_LEN + KV_FRAME_MAX_PAYLOAD) fails. Once it has failed the
 * decoder stays failed (the connection must be dropped). */
typedef struct _KvDecoder KvDecoder;
KvDecoder *kv_decoder_new(void);
void kv_decoder_free(KvDecoder *d);
gboolean kv_decoder_feed(KvDecoder *d, const void *data, gsize len, GError **error);
/* Reading straight into the decoder (no copy): kv_decoder_prepare() returns
 * room for len bytes at the end of its buffer (NULL with error when that
 * would pass the bound above, or the decoder failed), kv_decoder_commit()
 * then says how many of them were filled (<= len). Nothing else may be
 * called in between. Big payloads that end the buffer are handed out
 * without a copy too (the frame's GBytes then owns that buffer). */
guint8 *kv_decoder_prepare(KvDecoder *d, gsize len, GError **error);
void kv_decoder_commit(KvDecoder *d, gsize len);
/* Returns 1 and fills *out when a frame is ready, 0 when more bytes are
 * needed, -1 on a malformed frame (error set, decoder failed for good). */
int kv_decoder_next(KvDecoder *d, KvFrame *out, GError **error);
/* Cut-through for DATA: with min_piece > 0, a DATA frame whose payload is
 * still incomplete but has at least min_piece bytes (raised to
 * KV_FRAME_HDR_LEN) buffered comes out as a DATA frame of those bytes, and
 * the rest follows as further DATA frames on the same stream. Stream data
 * means the same however it is cut; a reader passes it on without waiting
 * for the whole frame. 0 (the default) restores whole frames. */
void kv_decoder_split_data(KvDecoder *d, gsize min_piece);
/* Bytes still to come for the frame whose header is buffered (0 when no
 * header is, the frame is complete, or its length is invalid). A hint for
 * readers: a peer that sent a header owes the rest. */
gsize kv_decoder_missing(KvDecoder *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KvDecoder, kv_decoder_free)

/* ---- message helpers (validate shape; used on both sides) ---- */
/* Parse a JSON payload of HELLO/REQUEST/RESPONSE/EVENT. Returns a new
 * JsonNode holding an object, or NULL with error. */
JsonNode *kv_json_parse_object(GBytes *payload, GError **error);
/* The same checks on JSON text from a file or a caller (config.json,
 * state.json): valid UTF-8, one object, nested at most 64 levels
 * (json-glib recurses on the caller's stack once per level: 60,000 levels
 * crash it), before json-glib sees it. FALSE with a KV_PROTO_ERROR naming
 * what is wrong. */
gboolean kv_json_check_text(const char *s, gsize len, GError **error);
/* Validated request: id fits u32, method is a non-empty string of at most
 * KV_METHOD_MAX_LEN chars, params is an object (empty object if absent). */
typedef struct {
  guint32 id;
  char *method;
  JsonObject *params; /* owned reference */
} KvRequest;
gboolean kv_request_parse(GBytes *payload, KvRequest *out, GError **error);
void kv_request_clear(KvRequest *r);
/* Validated response: exactly one of result (object) / error present. */
typedef struct {
  guint32 id;
  JsonObject *result; /* owned ref or NULL */
  int err_code;       /* when result == NULL */
  char *err_message;  /* when result == NULL */
} KvResponse;
gboolean kv_response_parse(GBytes *payload, KvResponse *out, GError **error);
/* Complete REQUEST / RESPONSE frames (NULL params/result: {}), encoded from
 * the same envelope tables the parsers check. */
GBytes *kv_request_encode(guint32 id, const char *method, JsonObject *params, GError **error);
GBytes *kv_response_encode(guint32 id, JsonObject *result, GError **error);
GBytes *kv_response_encode_error(guint32 id, int code, const char *message, GError **error);
void kv_response_clear(KvResponse *r);
/* HELLO: returns FALSE with KV_PROTO_ERROR_VERSION when proto differs. */
gboolean kv_hello_parse(GBytes *payload, char **role, char **version, GError **error);
GBytes *kv_hello_encode(const char *role, const char *version);
#define KV_HELLO_MAX_FEATURES 32u
/* The same with the features list (NULL-terminated; *features gets a new
 * NULL-terminated list, empty when the peer sent none). */
gboolean kv_hello_parse_full(GBytes *payload, char **role, char **version, char ***features,
                             GError **error);
GBytes *kv_hello_encode_full(const char *role, const char *version, const char *const *features);

/* ---- KvConn: one framed connection on a GMainContext ----
 * Owns an fd (stream socket or virtio-serial char device), reads and decodes
 * frames, dispatches them to handlers, queues writes (non-blocking), matches
 * responses to requests by id. Any malformed frame closes that connection
 * (on_closed with the error), never the process. */
typedef struct _KvConn KvConn;

typedef void (*KvRequestFunc)(KvConn *c, guint32 id, const char *method, JsonObject *params,
                              gpointer user);
typedef void (*KvFrameFunc)(KvConn *c, const KvFrame *f, gpointer user);
typedef void (*KvClosedFunc)(KvConn *c, const GError *why, gpointer user);
/* result is NULL when error is set (remote error: KV_PROTO_ERROR_REMOTE with
 * the remote code in error->message prefix; closed: KV_PROTO_ERROR_CLOSED) */
typedef void (*KvReplyFunc)(KvConn *c, JsonObject *result, const GError *error, gpointer user);

typedef struct {
  KvRequestFunc on_request; /* REQUEST frames */
  KvFrameFunc on_frame;     /* DATA / CREDIT / EOF / EVENT frames */
  KvClosedFunc on_closed;   /* EOF on fd, I/O error, protocol error */
  /* What our HELLO announces (NULL-terminated; NULL = none); copied. */
  const char *const *features;
} KvConnHandlers;

/* role: what we announce in our HELLO. The HELLO exchange is done by
 * KvConn itself; frames other than HELLO before the peer's HELLO are an
 * error. ctx NULL = thread-default main context. Takes ownership of fd. */
KvConn *kv_conn_new(int fd, const char *role, const KvConnHandlers *h, gpointer user,
                    GMainContext *ctx);
/* Peer's HELLO role/version once received, else NULL. */
const char *kv_conn_peer_role(KvConn *c);
const char *kv_conn_peer_version(KvConn *c);
gboolean kv_conn_is_ready(KvConn *c); /* peer HELLO seen and valid */
/* Whether the peer's HELLO announced `feature` (FALSE before it came). */
gboolean kv_conn_peer_has_feature(KvConn *c, const char *feature);
gboolean kv_conn_is_closed(KvConn *c);
/* Queue a frame. FALSE if closed or the frame is invalid. */
gboolean kv_conn_send(KvConn *c, KvFrameType type, guint32 stream, const void *data, gsize len,
                      GError **error);
/* Queue a DATA frame of len bytes (1..KV_FRAME_MAX_PAYLOAD) on stream
 * whose payload moves by splice(2) from the pipe pipe_fd to the conn's fd
 * when its turn comes, without passing through our memory (the agent uses
 * it for process output: no copy into and out of the agent). The pipe must
 * already hold exactly len bytes (a virtio-serial port must be handed the
 * whole pipe; see agent/stream.c), and nobody may read or write it until
 * done(user) has run; the conn keeps its own dup of pipe_fd until then. done runs once, from
 * the conn's main context, when the frame is written or dropped (conn
 * closed); not at all when this returns FALSE. The bytes count in
 * kv_conn_pending() until written. */
typedef void (*KvSpliceDoneFunc)(gpointer user);
gboolean kv_conn_send_spliced(KvConn *c, guint32 stream, int pipe_fd, gsize len,
                              KvSpliceDoneFunc done, gpointer user, GError **error);
/* Bytes queued but not yet written (callers use it for back-pressure). */
gsize kv_conn_pending(KvConn *c);
/* Async request; params may be NULL (empty object). Reply callback is
 * called exactly once (also on close). timeout_ms 0 = none. */
void kv_conn_call(KvConn *c, const char *method, JsonObject *params, guint timeout_ms,
                  KvReplyFunc cb, gpointer user);
/* Blocking request: iterates c's main context until the reply arrives.
 * Returns the result object (caller unrefs) or NULL with error. */
JsonObject *kv_conn_call_sync(KvConn *c, const char *method, JsonObject *params, guint timeout_ms,
                              GError **error);
/* Blocking wait for the peer's HELLO (or close/timeout). */
gboolean kv_conn_wait_ready(KvConn *c, guint timeout_ms, GError **error);
void kv_conn_reply(KvConn *c, guint32 id, JsonObject *result);
void kv_conn_reply_error(KvConn *c, guint32 id, int code, const char *msg);
void kv_conn_send_event(KvConn *c, const char *event, JsonObject *fields);
/* Flush queued writes synchronously (bounded by timeout). */
gboolean kv_conn_flush(KvConn *c, guint timeout_ms, GError **error);
/* Close the fd and detach from the main loop; on_closed is NOT called for
 * an explicit close. Pending calls get KV_PROTO_ERROR_CLOSED. */
void kv_conn_close(KvConn *c);
KvConn *kv_conn_ref(KvConn *c);
void kv_conn_unref(KvConn *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KvConn, kv_conn_unref)

/* ---- additions (implementation notes and helpers) ----
 * - kv_hello_encode() returns a complete HELLO frame (header included), like
 *   the other *_encode functions; version NULL = this build's version.
 * - The decoder validates JSON payloads with the parsers above, so a HELLO
 *   with another "proto" fails in the decoder with KV_PROTO_ERROR_VERSION.
 *   JSON payloads must be one UTF-8 object, nested at most 64 deep.
 * - KvClosedFunc's `why` is never NULL: a clean EOF from the peer is
 *   KV_PROTO_ERROR_CLOSED. kv_conn_close() attempts one non-blocking write of
 *   queued bytes, then discards the rest: call kv_conn_flush() first when the
 *   last reply matters.
 * - A REQUEST arriving with no on_request handler is answered with
 *   KV_E_UNSUPPORTED.
 * - Remote errors: KV_PROTO_ERROR_REMOTE, message "<code>: <remote message>".
 */
const char *kv_frame_type_name(KvFrameType type); /* "HELLO", ... "unknown" */
/* The u32 increment of a CREDIT frame (decoder-validated); 0 otherwise. */
guint32 kv_frame_credit(const KvFrame *f);
/* EVENT payload: "event" is a non-empty string of at most KV_METHOD_MAX_LEN.
 * *fields (optional) gets a ref to the whole object, "event" included. */
gboolean kv_event_parse(GBytes *payload, char **name, JsonObject **fields, GError **error);
/* For a KV_PROTO_ERROR_REMOTE error: the peer's code (0 for other errors)
 * and its message without the code prefix (error->message otherwise). */
int kv_remote_error_code(const GError *error);
const char *kv_remote_error_message(const GError *error);

/* Per-stream flow-control bookkeeping, one per stream and direction pair.
 * Receive side: kv_window_on_data() for each DATA frame received (fails with
 * KV_PROTO_ERROR_FLOW when the peer overran what we granted), then once the
 * bytes are consumed kv_window_grant() and send a CREDIT with the returned
 * amount (if non-zero). Send side: kv_window_on_credit() for each CREDIT
 * received (KV_PROTO_ERROR_FLOW on u32 overflow), send at most send_avail
 * bytes and account them with kv_window_on_send(). */
typedef struct {
  guint32 recv_avail; /* DATA bytes the peer may still send us */
  guint32 send_avail; /* DATA bytes we may still send the peer */
} KvWindow;
/* Both sides of w = the initial window of the stream's direction:
 * KV_STDIN_INITIAL_WINDOW when to_guest, else KV_STREAM_INITIAL_WINDOW. */
void kv_window_init(KvWindow *w, gboolean to_guest);
gboolean kv_window_on_data(KvWindow *w, gsize len, GError **error);
guint32 kv_window_grant(KvWindow *w, guint32 n); /* returns amount granted */
gboolean kv_window_on_credit(KvWindow *w, guint32 n, GError **error);
gboolean kv_window_on_send(KvWindow *w, gsize len, GError **error);
/* Hard cap on kv_conn_pending(): a send that would exceed it fails with
 * KV_PROTO_ERROR_FLOW and the conn is closed (on_closed, same code) from the
 * main loop. It only guards against a peer that never reads; callers should
 * pace DATA well below it. */
#define KV_CONN_MAX_PENDING (64u * 1024u * 1024u)
/* File descriptors over a unix socket conn (SCM_RIGHTS), host side only:
 * kv_conn_attach_fds() dups n fds (at most KV_CONN_MAX_FDS) and sends them
 * with the first byte of the next frame queued on c; a conn that is not a
 * socket fails that frame's write (and closes). The receiving conn must
 * have called kv_conn_accept_fds() (otherwise the kernel discards any fds
 * sent to it); it then keeps what arrives, at most KV_CONN_MAX_FDS_HELD not
 * yet taken (more closes the conn), and kv_conn_take_fd() hands them out
 * oldest first (-1 when none; the caller owns the fd). A frame's fds have
 * all been received by the time the frame is dispatched. Fds not taken are
 * closed with the conn. */
#define KV_CONN_MAX_FDS 4
#define KV_CONN_MAX_FDS_HELD 16
void kv_conn_accept_fds(KvConn *c);
int kv_conn_take_fd(KvConn *c);
gboolean kv_conn_attach_fds(KvConn *c, const int *fds, guint n, GError **error);
/* Gather large frames: for a conn whose peer sends big DATA frames in
 * many small writes (QEMU writes a virtio-serial buffer to its socket one
 * 4 KiB page at a time, and every write wakes a reader that waits on the
 * socket, even one blocked in recv(MSG_WAITALL)), once at least
 * KV_CONN_GATHER_MIN bytes of a frame are owed and fewer are there, sleep
 * KV_CONN_GATHER_WAIT_US without watching the socket, then read up to
 * KV_CONN_GATHER_MAX of the frame at once. At most one such sleep per
 * dispatch: a peer that stalls mid-frame costs this thread that much, no
 * more. DATA frames are then also handed to on_frame in pieces as they
 * arrive (kv_decoder_split_data, pieces of KV_CONN_GATHER_MIN / 2 and up),
 * not after the whole frame. FALSE (nothing changed) on a closed conn or an
 * fd without FIONREAD. */
#define KV_CONN_GATHER_MIN (32u * 1024u)
#define KV_CONN_GATHER_MAX (256u * 1024u)
/* 100 us: with 250 the guest sat idle 0.06-0.32 s of every 512 MiB it
 * streamed (its window ran out while the shim slept and QEMU's socket
 * filled); at 100 none, and 512 MiB of dd through exec went 1,345 ->
 * 1,159 ms (median of 8 interleaved pairs, 8 of 8 faster). Without
 * gathering at all: ~1,700 ms (a wake-up per 4 KiB). */
#define KV_CONN_GATHER_WAIT_US 100
gboolean kv_conn_gather_frames(KvConn *c);
/* Queue a CREDIT frame granting `increment` more bytes on `stream`. */
gboolean kv_conn_send_credit(KvConn *c, guint32 stream, guint32 increment, GError **error);

/* ---- liveness ----
 * Every KvConn answers a REQUEST "ping" ({} -> {}, the contract's
 * kv_m_ping) itself, from the main context that drives it, before any
 * handler sees it: an answer proves that the peer's event loop runs.
 *
 * kv_conn_keepalive(): every interval_ms (while c's context is iterated),
 * send a ping when none is outstanding, and measure how long the peer has
 * been silent (no byte received). A tick that comes more than two
 * intervals late (nobody iterated the context: a client between calls, or
 * this process was stopped) restarts the count, so only silence while we
 * were listening counts. Without a judge the peer is declared dead once
 * it has been silent for dead_ms after its HELLO; with one, judge decides at
 * each tick with at least one interval of silence (also before the HELLO,
 * when no pings are sent) and may append the reason to `why`. A dead peer
 * closes the conn with KV_PROTO_ERROR_TIMEOUT ("no answer from the <role>
 * for N s: <why>"): on_closed runs, and every pending call gets that
 * timeout error. user_free (may be NULL) frees user with the conn. */
typedef gboolean (*KvSilenceFunc)(KvConn *c, guint silent_ms, GString *why, gpointer user);
void kv_conn_keepalive(KvConn *c, guint interval_ms, guint dead_ms, KvSilenceFunc judge,
                       gpointer user, GDestroyNotify user_free);
/* Close c now as failed with `why` (copied): on_closed runs with it, pending
 * calls fail with it (a KV_PROTO_ERROR_TIMEOUT stays a timeout). */
void kv_conn_fail(KvConn *c, const GError *why);

G_END_DECLS

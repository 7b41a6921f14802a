/* shim-v2/ttrpc.h: ttrpc (containerd's small gRPC over a unix socket),
 * written here in C: the frame format, an incremental decoder and a
 * blocking server on a listening socket.
 *
 * A frame: a 10-byte header (payload length u32 big-endian, stream id u32
 * big-endian, type u8, flags u8) and the payload, at most
 * TTRPC_MESSAGE_MAX bytes as in ttrpc-go. A request (type 1) carries a
 * ttrpc.Request protobuf, the answer (type 2, same stream id) a
 * ttrpc.Response. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define TTRPC_HEADER_LEN 10u
#define TTRPC_MESSAGE_MAX (4u << 20)
#define TTRPC_TYPE_REQUEST 1u
#define TTRPC_TYPE_RESPONSE 2u

/* gRPC status codes (google.rpc.Code) that ttrpc answers carry. */
enum {
  TTRPC_OK = 0,
  TTRPC_UNKNOWN = 2,
  TTRPC_INVALID_ARGUMENT = 3,
  TTRPC_NOT_FOUND = 5,
  TTRPC_ALREADY_EXISTS = 6,
  TTRPC_FAILED_PRECONDITION = 9,
  TTRPC_RESOURCE_EXHAUSTED = 8,
  TTRPC_UNIMPLEMENTED = 12,
  TTRPC_INTERNAL = 13,
  TTRPC_UNAVAILABLE = 14,
};

typedef struct {
  uint32_t length;
  uint32_t stream;
  uint8_t type;
  uint8_t flags;
} TtrpcHeader;

void ttrpc_header_encode(const TtrpcHeader *h, uint8_t out[TTRPC_HEADER_LEN]);
void ttrpc_header_decode(const uint8_t in[TTRPC_HEADER_LEN], TtrpcHeader *h);

/* An incremental frame decoder: feed bytes as they arrive, take frames out.
 * A frame longer than TTRPC_MESSAGE_MAX is not kept: its payload is
 * skipped and it comes out with `oversized` set (and no payload), so the
 * server answers that stream with an error and goes on. */
typedef struct {
  uint8_t hdr[TTRPC_HEADER_LEN];
  size_t hdr_have;
  TtrpcHeader cur;
  uint8_t *buf;
  size_t have;
  size_t skip; /* payload bytes of an oversized frame still to skip */
} TtrpcDecoder;

typedef struct {
  TtrpcHeader h;
  uint8_t *payload; /* malloc'd, NULL when oversized or empty */
  int oversized;
} TtrpcFrame;

void ttrpc_decoder_init(TtrpcDecoder *d);
void ttrpc_decoder_clear(TtrpcDecoder *d);
/* Consume up to n bytes of data; stops after one complete frame.
 * Returns the bytes consumed; *got = 1 when `out` received a frame (free
 * its payload with free()). */
size_t ttrpc_decoder_feed(TtrpcDecoder *d, const uint8_t *data, size_t n, TtrpcFrame *out,
                          int *got);

/* The server. A handler answers one request: it fills *resp (a packed
 * protobuf, malloc'd, may be NULL for an empty message) and returns
 * TTRPC_OK, or returns a status code and fills *msg (malloc'd) with the
 * error message. Handlers run on a thread per request (containerd keeps
 * Wait calls open while it sends others). */
typedef int (*TtrpcHandler)(void *ctx, const char *service, const char *method,
                            const uint8_t *payload, size_t len, uint8_t **resp, size_t *resp_len,
                            char **msg);

/* Pack a ttrpc.Response for a request (status code / message or payload);
 * returns a malloc'd buffer with the frame (header included). */
uint8_t *ttrpc_response_frame(uint32_t stream, int code, const char *msg, const uint8_t *payload,
                              size_t len, size_t *frame_len);

/* Serve connections on the listening socket `lfd` until *stop becomes
 * nonzero (checked every 200 ms). Each connection gets a reader thread. */
void ttrpc_serve(int lfd, TtrpcHandler h, void *ctx, volatile int *stop);

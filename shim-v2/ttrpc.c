/* shim-v2/ttrpc.c: ttrpc framing, decoder and server (see ttrpc.h). */
#include "ttrpc.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ttrpc.pb-c.h"

void ttrpc_header_encode(const TtrpcHeader *h, uint8_t out[TTRPC_HEADER_LEN]) {
  out[0] = (uint8_t)(h->length >> 24);
  out[1] = (uint8_t)(h->length >> 16);
  out[2] = (uint8_t)(h->length >> 8);
  out[3] = (uint8_t)h->length;
  out[4] = (uint8_t)(h->stream >> 24);
  out[5] = (uint8_t)(h->stream >> 16);
  out[6] = (uint8_t)(h->stream >> 8);
  out[7] = (uint8_t)h->stream;
  out[8] = h->type;
  out[9] = h->flags;
}

void ttrpc_header_decode(const uint8_t in[TTRPC_HEADER_LEN], TtrpcHeader *h) {
  h->length = (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
  h->stream = (uint32_t)in[4] << 24 | (uint32_t)in[5] << 16 | (uint32_t)in[6] << 8 | in[7];
  h->type = in[8];
  h->flags = in[9];
}

void ttrpc_decoder_init(TtrpcDecoder *d) {
  memset(d, 0, sizeof(*d));
}

void ttrpc_decoder_clear(TtrpcDecoder *d) {
  free(d->buf);
  memset(d, 0, sizeof(*d));
}

size_t ttrpc_decoder_feed(TtrpcDecoder *d, const uint8_t *data, size_t n, TtrpcFrame *out,
                          int *got) {
  size_t used = 0;
  *got = 0;
  while (used < n || (d->hdr_have == TTRPC_HEADER_LEN && d->cur.length == 0)) {
    if (d->hdr_have < TTRPC_HEADER_LEN) {
      size_t take = TTRPC_HEADER_LEN - d->hdr_have;
      if (take > n - used)
        take = n - used;
      memcpy(d->hdr + d->hdr_have, data + used, take);
      d->hdr_have += take;
      used += take;
      if (d->hdr_have < TTRPC_HEADER_LEN)
        return used;
      ttrpc_header_decode(d->hdr, &d->cur);
      d->have = 0;
      if (d->cur.length > TTRPC_MESSAGE_MAX) {
        d->skip = d->cur.length;
      } else if (d->cur.length) {
        d->buf = malloc(d->cur.length);
        if (!d->buf)
          abort();
      }
    }
    if (d->skip) {
      size_t take = d->skip < n - used ? d->skip : n - used;
      d->skip -= take;
      used += take;
      if (d->skip)
        return used;
      out->h = d->cur;
      out->payload = NULL;
      out->oversized = 1;
      d->hdr_have = 0;
      *got = 1;
      return used;
    }
    size_t take = d->cur.length - d->have;
    if (take > n - used)
      take = n - used;
    if (take)
      memcpy(d->buf + d->have, data + used, take);
    d->have += take;
    used += take;
    if (d->have < d->cur.length)
      return used;
    out->h = d->cur;
    out->payload = d->buf;
    out->oversized = 0;
    d->buf = NULL;
    d->hdr_have = 0;
    d->have = 0;
    *got = 1;
    return used;
  }
  return used;
}

uint8_t *ttrpc_response_frame(uint32_t stream, int code, const char *msg, const uint8_t *payload,
                              size_t len, size_t *frame_len) {
  Ttrpc__Response r = TTRPC__RESPONSE__INIT;
  Ttrpc__Status st = TTRPC__STATUS__INIT;
  if (code != TTRPC_OK) {
    st.code = code;
    st.message = (char *)(msg ? msg : "");
    r.status = &st;
  } else {
    r.payload.data = (uint8_t *)payload;
    r.payload.len = len;
  }
  size_t plen = ttrpc__response__get_packed_size(&r);
  uint8_t *f = malloc(TTRPC_HEADER_LEN + plen);
  if (!f)
    abort();
  TtrpcHeader h = {.length = (uint32_t)plen, .stream = stream, .type = TTRPC_TYPE_RESPONSE};
  ttrpc_header_encode(&h, f);
  ttrpc__response__pack(&r, f + TTRPC_HEADER_LEN);
  *frame_len = TTRPC_HEADER_LEN + plen;
  return f;
}

/* One connection: a reader thread; requests run on threads of their own,
 * answers are written under the connection's lock. */
typedef struct {
  int fd;
  pthread_mutex_t lock;
  int refs;
  TtrpcHandler h;
  void *ctx;
} Conn;

static void conn_unref(Conn *c) {
  pthread_mutex_lock(&c->lock);
  int last = --c->refs == 0;
  pthread_mutex_unlock(&c->lock);
  if (last) {
    close(c->fd);
    pthread_mutex_destroy(&c->lock);
    free(c);
  }
}

static void conn_send(Conn *c, const uint8_t *f, size_t n) {
  pthread_mutex_lock(&c->lock);
  size_t off = 0;
  while (off < n) {
    ssize_t w = send(c->fd, f + off, n - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      break;
    off += (size_t)w;
  }
  pthread_mutex_unlock(&c->lock);
}

static void reply(Conn *c, uint32_t stream, int code, const char *msg, const uint8_t *p,
                  size_t len) {
  size_t flen;
  uint8_t *f = ttrpc_response_frame(stream, code, msg, p, len, &flen);
  conn_send(c, f, flen);
  free(f);
}

typedef struct {
  Conn *c;
  TtrpcFrame f;
} Job;

static void *run_job(void *arg) {
  Job *j = arg;
  Ttrpc__Request *req = ttrpc__request__unpack(NULL, j->f.h.length, j->f.payload);
  if (!req) {
    reply(j->c, j->f.h.stream, TTRPC_INVALID_ARGUMENT, "ttrpc: malformed request protobuf", NULL,
          0);
  } else {
    uint8_t *resp = NULL;
    size_t rlen = 0;
    char *msg = NULL;
    int code = j->c->h(j->c->ctx, req->service, req->method, req->payload.data, req->payload.len,
                       &resp, &rlen, &msg);
    reply(j->c, j->f.h.stream, code, msg, resp, rlen);
    free(resp);
    free(msg);
    ttrpc__request__free_unpacked(req, NULL);
  }
  free(j->f.payload);
  conn_unref(j->c);
  free(j);
  return NULL;
}

static void dispatch(Conn *c, TtrpcFrame *f) {
  if (f->oversized) {
    reply(c, f->h.stream, TTRPC_RESOURCE_EXHAUSTED, "ttrpc: message length exceeds 4194304 bytes",
          NULL, 0);
    return;
  }
  if (f->h.type != TTRPC_TYPE_REQUEST) {
    free(f->payload);
    reply(c, f->h.stream, TTRPC_INVALID_ARGUMENT, "ttrpc: not a request frame", NULL, 0);
    return;
  }
  Job *j = calloc(1, sizeof(*j));
  if (!j)
    abort();
  j->c = c;
  j->f = *f;
  pthread_mutex_lock(&c->lock);
  c->refs++;
  pthread_mutex_unlock(&c->lock);
  pthread_t t;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&t, &a, run_job, j) != 0)
    run_job(j);
  pthread_attr_destroy(&a);
}

static void *conn_reader(void *arg) {
  Conn *c = arg;
  TtrpcDecoder d;
  ttrpc_decoder_init(&d);
  uint8_t buf[65536];
  for (;;) {
    ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    size_t off = 0;
    while (off < (size_t)n) {
      TtrpcFrame f;
      int got;
      off += ttrpc_decoder_feed(&d, buf + off, (size_t)n - off, &f, &got);
      if (got)
        dispatch(c, &f);
    }
  }
  ttrpc_decoder_clear(&d);
  shutdown(c->fd, SHUT_RDWR);
  conn_unref(c);
  return NULL;
}

void ttrpc_serve(int lfd, TtrpcHandler h, void *ctx, volatile int *stop) {
  while (!*stop) {
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    int r = poll(&p, 1, 200);
    if (r <= 0)
      continue;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
      continue;
    Conn *c = calloc(1, sizeof(*c));
    if (!c)
      abort();
    c->fd = fd;
    c->refs = 1;
    c->h = h;
    c->ctx = ctx;
    pthread_mutex_init(&c->lock, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, conn_reader, c) != 0) {
      conn_unref(c);
      continue;
    }
    pthread_detach(t);
  }
}

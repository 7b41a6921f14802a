/* tests/fuzz/fuzz_ttrpc.c: libFuzzer target for the ttrpc frame decoder of
 * containerd-shim-katavm-v2 (shim-v2/ttrpc.c) and the Request protobuf it
 * unpacks. Byte 0 seeds the split sizes; the rest is a byte stream fed in
 * pieces. Invariants: the frames (stream, type, length, payload) are the
 * same however the stream is split, and every frame either carries its
 * whole payload or is marked oversized. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ttrpc.h"
#include "ttrpc.pb-c.h"

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      __builtin_trap();                                                                            \
  } while (0)

typedef struct {
  uint32_t stream, length;
  uint8_t type;
  int oversized;
  uint64_t sum;
} Seen;

static size_t run(const uint8_t *d, size_t n, unsigned seed, Seen *out, size_t max) {
  TtrpcDecoder dec;
  ttrpc_decoder_init(&dec);
  size_t frames = 0, off = 0;
  while (off < n) {
    size_t step = seed ? 1 + (seed = seed * 1103515245u + 12345u) % 97 : n - off;
    if (step > n - off)
      step = n - off;
    size_t used = 0;
    while (used < step) {
      TtrpcFrame f;
      int got;
      size_t u = ttrpc_decoder_feed(&dec, d + off + used, step - used, &f, &got);
      CHECK(u <= step - used);
      used += u;
      if (!got) {
        CHECK(u > 0);
        continue;
      }
      CHECK(f.oversized ? f.payload == NULL : (f.h.length == 0 || f.payload != NULL));
      uint64_t sum = 0;
      if (f.payload) {
        for (uint32_t i = 0; i < f.h.length; i++)
          sum = sum * 31 + f.payload[i];
        Ttrpc__Request *r = ttrpc__request__unpack(NULL, f.h.length, f.payload);
        if (r)
          ttrpc__request__free_unpacked(r, NULL);
      }
      free(f.payload);
      if (frames < max)
        out[frames] = (Seen){f.h.stream, f.h.length, f.h.type, f.oversized, sum};
      frames++;
    }
    off += step;
  }
  ttrpc_decoder_clear(&dec);
  return frames;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  static Seen a[4096], b[4096];
  size_t na = run(data + 1, size - 1, 0, a, 4096);
  size_t nb = run(data + 1, size - 1, data[0] | 1u, b, 4096);
  CHECK(na == nb);
  for (size_t i = 0; i < na && i < 4096; i++)
    CHECK(!memcmp(&a[i], &b[i], sizeof(Seen)));
  return 0;
}

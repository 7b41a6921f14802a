/* tests/unit/test_client.c: the client library against a hostile shim.
 *
 * The host treats anything on the other end of a socket as untrusted. Here a
 * fake shim (a thread speaking raw bytes on the sandbox's shim socket, laid
 * out exactly where kv_paths_init puts it) sends garbage, truncated frames,
 * absurd lengths, unknown frame types, a foreign protocol version, replies
 * to the wrong request, hostile error replies and oversized fields. Every
 * time, katavm_sandbox_open / katavm_sandbox_agent_check must fail cleanly
 * with a specific katavm code and a message that says what went wrong: no
 * crash, no hang, no leaked fd.
 *
 * The fake shim is always reachable, so the library never tries to recover
 * the sandbox; KATAVM_SHIM=/bin/false makes sure a recovery attempt could
 * not spawn anything real either.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "abi.h"
#include "internal.h"
#include "proto.h"
#include "msg.h"

#define SB_ID "fake1"

typedef enum {
  FAKE_GARBAGE,       /* bytes that are no frame at all */
  FAKE_TRUNCATED,     /* half a frame header, then close */
  FAKE_OVERSIZED,     /* header announcing a 4 GiB payload */
  FAKE_UNKNOWN_TYPE,  /* header with frame type 0x7f */
  FAKE_BAD_VERSION,   /* HELLO speaking protocol 99 */
  FAKE_SILENT,        /* accepts, never says HELLO */
  FAKE_CLOSE_AT_ONCE, /* accepts and closes */
  /* The rest send a valid HELLO, then answer the first REQUEST: */
  FAKE_WRONG_ID,       /* RESPONSE to another id, then close */
  FAKE_RESULT_ARRAY,   /* "result" is an array, not an object */
  FAKE_REMOTE_STATE,   /* error reply with KATAVM_E_STATE */
  FAKE_REMOTE_BOGUS,   /* error reply with a code outside katavm's range */
  FAKE_HOSTILE_FIELDS, /* a result with oversized and mistyped fields */
  FAKE_HUGE_FIELD,     /* a well-typed result with an oversized string */
  FAKE_REQUEST_BACK,   /* the shim sends the client a REQUEST */
} FakeMode;

typedef struct {
  FakeMode mode;
  int listen_fd;
  guint32 request_id; /* what the client asked with, for the test to see */
  char *method;
} Fake;

static char *root;
static katavm_runtime *rt;

/* ---- helpers ---- */

static int count_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  ck_assert_ptr_nonnull(d);
  while (readdir(d))
    n++;
  closedir(d);
  return n - 3; /* ".", ".." and the DIR's own fd */
}

static void write_all(int fd, const void *p, gsize n) {
  const guint8 *b = p;
  while (n > 0) {
    ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return; /* the client hung up first: fine, it judged already */
    b += w;
    n -= (gsize)w;
  }
}

static void write_bytes(int fd, GBytes *b) {
  gsize n = 0;
  const void *p = g_bytes_get_data(b, &n);
  write_all(fd, p, n);
  g_bytes_unref(b);
}

static GBytes *json_frame(KvFrameType type, const char *json) {
  g_autoptr(JsonNode) n = json_from_string(json, NULL);
  ck_assert_ptr_nonnull(n);
  GBytes *b = kv_frame_encode_json(type, n, NULL);
  ck_assert_ptr_nonnull(b);
  return b;
}

static void header(int fd, guint16 magic, guint8 type, guint32 stream, guint32 len) {
  guint8 h[KV_FRAME_HDR_LEN] = {magic >> 8, magic & 0xff, type, 0};
  guint32 s = GUINT32_TO_BE(stream), l = GUINT32_TO_BE(len);
  memcpy(h + 4, &s, 4);
  memcpy(h + 8, &l, 4);
  write_all(fd, h, sizeof h);
}

/* Read frames until one of `type` arrives; FALSE on EOF, error or after
 * 10 s (a test must fail, not hang). */
static gboolean read_frame(int fd, KvDecoder *d, KvFrameType type, KvFrame *out) {
  gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
  for (;;) {
    int r = kv_decoder_next(d, out, NULL);
    if (r < 0)
      return FALSE;
    if (r == 1) {
      if (out->type == type)
        return TRUE;
      kv_frame_clear(out);
      continue;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int left = (int)((deadline - g_get_monotonic_time()) / 1000);
    if (left <= 0 || poll(&p, 1, left) <= 0)
      return FALSE;
    guint8 buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0 || !kv_decoder_feed(d, buf, (gsize)n, NULL))
      return FALSE;
  }
}

/* Wait (at most 15 s) for the client to hang up, discarding what it sends.
 * The fake closes only after the client did for the modes that test how a
 * client reacts to bad bytes, so that EOF cannot race with them. */
static void wait_client_gone(int fd) {
  gint64 deadline = g_get_monotonic_time() + 15 * G_USEC_PER_SEC;
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int left = (int)((deadline - g_get_monotonic_time()) / 1000);
    if (left <= 0 || poll(&p, 1, left) <= 0)
      return;
    guint8 buf[4096];
    if (read(fd, buf, sizeof buf) <= 0)
      return;
  }
}

static gpointer fake_shim(gpointer data) {
  Fake *f = data;
  struct pollfd p = {.fd = f->listen_fd, .events = POLLIN};
  if (poll(&p, 1, 10000) <= 0)
    return NULL;
  int c = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);
  if (c < 0)
    return NULL;
  /* Everything with a cleanup is declared before the first goto. */
  g_autoptr(KvDecoder) d = kv_decoder_new();
  g_autofree char *reply = NULL;
  KvFrame fr = {0};
  /* Take the client's HELLO first: closing a unix socket with unread data
   * turns the peer's EOF into ECONNRESET, which would change the error
   * under test. */
  if (f->mode != FAKE_SILENT && f->mode != FAKE_CLOSE_AT_ONCE &&
      !read_frame(c, d, KV_FRAME_HELLO, &fr))
    goto out;
  kv_frame_clear(&fr);

  switch (f->mode) {
  case FAKE_GARBAGE:
    write_all(c, "GET / HTTP/1.1\r\nHost: shim\r\n\r\n", 31);
    wait_client_gone(c);
    goto out;
  case FAKE_TRUNCATED: {
    GBytes *hello = kv_hello_encode("shim", NULL);
    write_all(c, g_bytes_get_data(hello, NULL), 7);
    g_bytes_unref(hello);
    goto out; /* close mid-header */
  }
  case FAKE_OVERSIZED:
    header(c, KV_FRAME_MAGIC, KV_FRAME_HELLO, 0, 0xffffffffu);
    write_all(c, "{\"proto\":2", 10);
    wait_client_gone(c);
    goto out;
  case FAKE_UNKNOWN_TYPE:
    header(c, KV_FRAME_MAGIC, 0x7f, 0, 0);
    wait_client_gone(c);
    goto out;
  case FAKE_BAD_VERSION:
    write_bytes(c, json_frame(KV_FRAME_HELLO, "{\"proto\":99,\"role\":\"shim\","
                                              "\"version\":\"9.9.9\"}"));
    wait_client_gone(c);
    goto out;
  case FAKE_SILENT:
    wait_client_gone(c);
    goto out;
  case FAKE_CLOSE_AT_ONCE:
    goto out;
  default:
    break;
  }

  write_bytes(c, kv_hello_encode("shim", NULL));
  KvRequest req = {0};
  if (!read_frame(c, d, KV_FRAME_REQUEST, &fr) || !kv_request_parse(fr.payload, &req, NULL))
    goto out;
  f->request_id = req.id;
  f->method = g_strdup(req.method);
  kv_request_clear(&req);
  switch (f->mode) {
  case FAKE_WRONG_ID:
    reply = g_strdup_printf("{\"id\":%u,\"result\":{\"kernel\":\"evil\"}}", f->request_id + 1000);
    write_bytes(c, json_frame(KV_FRAME_RESPONSE, reply));
    goto out; /* and never answer the real request */
  case FAKE_RESULT_ARRAY: {
    /* Not constructible with the encoder (it validates): raw text. */
    g_autofree char *t = g_strdup_printf("{\"id\":%u,\"result\":[1,2,3]}", f->request_id);
    header(c, KV_FRAME_MAGIC, KV_FRAME_RESPONSE, 0, (guint32)strlen(t));
    write_all(c, t, strlen(t));
    wait_client_gone(c);
    goto out;
  }
  case FAKE_REMOTE_STATE:
    reply = g_strdup_printf("{\"id\":%u,\"error\":{\"code\":%d,\"message\":"
                            "\"sandbox is not running\"}}",
                            f->request_id, KATAVM_E_STATE);
    break;
  case FAKE_REMOTE_BOGUS:
    reply = g_strdup_printf("{\"id\":%u,\"error\":{\"code\":-123456,"
                            "\"message\":\"weird failure\"}}",
                            f->request_id);
    break;
  case FAKE_HOSTILE_FIELDS: {
    g_autofree char *huge = g_strnfill(200000, 'K');
    reply = g_strdup_printf("{\"id\":%u,\"result\":{\"agent_version\":\"%s\",\"kernel\":42,"
                            "\"proto\":\"one\",\"cpus_online\":[1],\"mem_total_kib\":-5,"
                            "\"uptime_ms\":1e300,\"extra\":{\"deep\":[[[[]]]]}}}",
                            f->request_id, huge);
    break;
  }
  case FAKE_HUGE_FIELD: {
    g_autofree char *huge = g_strnfill(200000, 'K');
    reply = g_strdup_printf("{\"id\":%u,\"result\":{\"agent_version\":\"%s\",\"proto\":1,"
                            "\"extra\":{\"deep\":[[[[]]]]}}}",
                            f->request_id, huge);
    break;
  }
  case FAKE_REQUEST_BACK:
    write_bytes(c, json_frame(KV_FRAME_REQUEST, "{\"id\":7,\"method\":\"rm_rf_host\","
                                                "\"params\":{}}"));
    /* The client must answer "no handler", not run anything; then the
     * fake answers the real request properly. */
    if (!read_frame(c, d, KV_FRAME_RESPONSE, &fr))
      goto out;
    kv_frame_clear(&fr);
    reply = g_strdup_printf("{\"id\":%u,\"result\":{\"kernel\":\"ok\","
                            "\"cpus_online\":1}}",
                            f->request_id);
    break;
  default:
    g_assert_not_reached();
  }
  write_bytes(c, json_frame(KV_FRAME_RESPONSE, reply));
  wait_client_gone(c);
out:
  kv_frame_clear(&fr);
  close(c);
  return NULL;
}

/* ---- fixture: a sandbox dir with a valid config and a socket path ---- */

static void setup(void) {
  /* Short: unix socket paths below the root must fit 108 bytes. */
  root = g_dir_make_tmp("kvc-XXXXXX", NULL);
  ck_assert_ptr_nonnull(root);
  ck_assert_int_le(strlen(root), 32);
  g_setenv("KATAVM_SHIM", "/bin/false", TRUE);
  katavm_error *e = NULL;
  ck_assert_int_eq(katavm_runtime_new(&rt, &e), 0);
  ck_assert_int_eq(katavm_runtime_set_root(rt, root, &e), 0);

  g_auto(KvPaths) p;
  kv_paths_init(&p, root, SB_ID);
  ck_assert_int_eq(g_mkdir_with_parents(p.dir, 0700), 0);
  ck_assert_int_eq(g_mkdir_with_parents(p.run, 0700), 0);
  KvSandboxConfig c = {
      .id = SB_ID,
      .accel = "tcg",
      .kernel = "/nonexistent/vmlinux",
      .initrd = "/nonexistent/initrd",
      .vcpus = 1,
      .max_vcpus = 1,
      .memory_mib = 256,
      .max_memory_mib = 256,
      .created = "2024-01-01T00:00:00Z",
  };
  g_autoptr(GError) ge = NULL;
  ck_assert_msg(kv_config_save(&c, p.config, &ge), "config: %s", ge ? ge->message : "?");
}

static void teardown(void) {
  katavm_runtime_free(rt);
  rt = NULL;
  kv_rm_rf(root, NULL);
  g_clear_pointer(&root, g_free);
}

static int listen_on_shim_socket(void) {
  g_auto(KvPaths) p;
  kv_paths_init(&p, root, SB_ID);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  ck_assert_uint_lt(strlen(p.shim_sock), sizeof sa.sun_path);
  strcpy(sa.sun_path, p.shim_sock);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  ck_assert_int_eq(listen(fd, 4), 0);
  return fd;
}

typedef struct {
  Fake f;
  GThread *thread;
  int fds_before;
} Run;

static void run_start(Run *r, FakeMode mode) {
  r->fds_before = count_fds();
  r->f.mode = mode;
  r->f.listen_fd = listen_on_shim_socket();
  r->thread = g_thread_new("fake-shim", fake_shim, &r->f);
}

/* Join the fake, close the listener and check no fd of ours is left. */
static void run_finish(Run *r) {
  g_thread_join(r->thread);
  close(r->f.listen_fd);
  g_free(r->f.method);
  ck_assert_int_eq(count_fds(), r->fds_before);
}

static void assert_error(int rc, katavm_error *e, int code, const char *needle) {
  ck_assert_msg(rc == code, "expected %s (%d), got %s (%d): %s", katavm_code_name(code), code,
                katavm_code_name(rc), rc, katavm_error_message(e));
  ck_assert_ptr_nonnull(e);
  ck_assert_int_eq(katavm_error_code(e), code);
  ck_assert_msg(strstr(katavm_error_message(e), needle), "error '%s' does not mention '%s'",
                katavm_error_message(e), needle);
  katavm_error_free(e);
}

/* open must fail with code/needle against the given fake. */
static void expect_open_fails(FakeMode mode, int code, const char *needle) {
  Run r = {0};
  run_start(&r, mode);
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  gint64 t0 = g_get_monotonic_time();
  int rc = katavm_sandbox_open(rt, SB_ID, &sb, &e);
  assert_error(rc, e, code, needle);
  ck_assert_ptr_null(sb);
  /* Bad bytes are judged at once; only silence waits for the timeout. */
  if (mode != FAKE_SILENT)
    ck_assert_int_lt(g_get_monotonic_time() - t0, 5 * G_USEC_PER_SEC);
  run_finish(&r);
}

/* open succeeds (valid HELLO), then agent_check meets the fake's reply. */
static katavm_sandbox *open_ok(Run *r, FakeMode mode) {
  run_start(r, mode);
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  int rc = katavm_sandbox_open(rt, SB_ID, &sb, &e);
  ck_assert_msg(rc == 0, "open: %s", katavm_error_message(e));
  ck_assert_str_eq(katavm_sandbox_id(sb), SB_ID);
  return sb;
}

static void expect_check_fails(FakeMode mode, int code, const char *needle) {
  Run r = {0};
  katavm_sandbox *sb = open_ok(&r, mode);
  katavm_guest_info gi;
  memset(&gi, 0x5a, sizeof gi); /* every byte but struct_size is junk */
  gi.struct_size = sizeof gi;
  katavm_error *e = NULL;
  int rc = katavm_sandbox_agent_check(sb, &gi, &e);
  assert_error(rc, e, code, needle);
  ck_assert_str_eq(r.f.method ? r.f.method : "(none)", kv_m_shim_agent_check.name);
  katavm_sandbox_close(sb);
  run_finish(&r);
}

/* ---- tests ---- */

START_TEST(garbage) {
  expect_open_fails(FAKE_GARBAGE, KATAVM_E_PROTOCOL, "bad frame magic");
}
END_TEST

START_TEST(truncated_then_close) {
  /* Half a header and EOF: the shim went away mid-frame. */
  expect_open_fails(FAKE_TRUNCATED, KATAVM_E_AGENT, "peer closed");
}
END_TEST

START_TEST(close_at_once) {
  expect_open_fails(FAKE_CLOSE_AT_ONCE, KATAVM_E_AGENT, "peer");
}
END_TEST

START_TEST(oversized_length) {
  /* Refused from the header alone: nothing near 4 GiB is buffered. */
  expect_open_fails(FAKE_OVERSIZED, KATAVM_E_PROTOCOL, "exceeds the limit");
}
END_TEST

START_TEST(unknown_frame_type) {
  expect_open_fails(FAKE_UNKNOWN_TYPE, KATAVM_E_PROTOCOL, "unknown frame type 127");
}
END_TEST

START_TEST(wrong_protocol_version) {
  expect_open_fails(FAKE_BAD_VERSION, KATAVM_E_PROTOCOL,
                    "protocol version mismatch: peer speaks katavm protocol 99");
}
END_TEST

START_TEST(silent_shim_times_out) {
  /* A shim that accepts and says nothing must not hang open forever. */
  expect_open_fails(FAKE_SILENT, KATAVM_E_TIMEOUT, "no HELLO");
}
END_TEST

START_TEST(response_to_wrong_id) {
  /* The stray reply is not taken for ours; the close then fails the call. */
  expect_check_fails(FAKE_WRONG_ID, KATAVM_E_AGENT, "closed");
}
END_TEST

START_TEST(result_not_object) {
  /* The violation closes the connection; the pending call fails with the
   * close (KATAVM_E_AGENT), its message naming the violation. */
  expect_check_fails(FAKE_RESULT_ARRAY, KATAVM_E_AGENT, "response: result must be an object");
}
END_TEST

START_TEST(remote_error_keeps_code) {
  expect_check_fails(FAKE_REMOTE_STATE, KATAVM_E_STATE, "sandbox is not running");
}
END_TEST

START_TEST(remote_error_bogus_code) {
  /* A code the library does not know is not passed on as if it were one. */
  expect_check_fails(FAKE_REMOTE_BOGUS, KATAVM_E_AGENT, "weird failure");
}
END_TEST

START_TEST(hostile_fields_bounded) {
  /* Mistyped fields break the contract: the call fails naming the field,
   * nothing is read as a default. */
  expect_check_fails(FAKE_HOSTILE_FIELDS, KATAVM_E_PROTOCOL,
                     "agent_check result: proto must be an integer");
}
END_TEST

START_TEST(huge_field_cut) {
  /* Well-formed but oversized strings are cut to the struct's buffers
   * (NUL-terminated); unknown fields are ignored. */
  Run r = {0};
  katavm_sandbox *sb = open_ok(&r, FAKE_HUGE_FIELD);
  katavm_guest_info gi;
  memset(&gi, 0x5a, sizeof gi); /* every byte but struct_size is junk */
  gi.struct_size = sizeof gi;
  katavm_error *e = NULL;
  int rc = katavm_sandbox_agent_check(sb, &gi, &e);
  ck_assert_msg(rc == 0, "agent check: %s", katavm_error_message(e));
  ck_assert_uint_eq(strlen(gi.agent_version), sizeof gi.agent_version - 1);
  ck_assert_str_eq(gi.kernel_release, "");
  ck_assert_uint_eq(gi.proto_version, 1);
  ck_assert_uint_eq(gi.cpus_online, 0);
  katavm_sandbox_close(sb);
  run_finish(&r);
}
END_TEST

START_TEST(shim_sends_request) {
  /* A REQUEST from the shim is refused by the client, which still gets its
   * own answer. */
  Run r = {0};
  katavm_sandbox *sb = open_ok(&r, FAKE_REQUEST_BACK);
  katavm_guest_info gi;
  katavm_guest_info_init(&gi);
  katavm_error *e = NULL;
  int rc = katavm_sandbox_agent_check(sb, &gi, &e);
  ck_assert_msg(rc == 0, "agent check: %s", katavm_error_message(e));
  ck_assert_str_eq(gi.kernel_release, "ok");
  ck_assert_uint_eq(gi.cpus_online, 1);
  katavm_sandbox_close(sb);
  run_finish(&r);
}
END_TEST

START_TEST(no_shim_no_recovery_spawned) {
  /* Nothing listens: the library would recover with KATAVM_SHIM, which is
   * /bin/false here; the failure must say so clearly (the sandbox is left
   * for destroy: KATAVM_E_STATE), leaking nothing. */
  int before = count_fds();
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  int rc = katavm_sandbox_open(rt, SB_ID, &sb, &e);
  assert_error(rc, e, KATAVM_E_STATE, "recovery failed");
  ck_assert_ptr_null(sb);
  ck_assert_int_eq(count_fds(), before);
}
END_TEST

/* ---- struct sizes (katavm.h "Structs that can grow") ---- */

START_TEST(struct_size_reported) {
  ck_assert_uint_eq(katavm_struct_size("katavm_sandbox_config"), sizeof(katavm_sandbox_config));
  ck_assert_uint_eq(katavm_struct_size("katavm_guest_info"), sizeof(katavm_guest_info));
  ck_assert_uint_eq(katavm_struct_size("katavm_container_config"), sizeof(katavm_container_config));
  ck_assert_uint_eq(katavm_struct_size("katavm_exec_config"), sizeof(katavm_exec_config));
  ck_assert_uint_eq(katavm_struct_size("katavm_hotplug_request"), sizeof(katavm_hotplug_request));
  ck_assert_uint_eq(katavm_struct_size("katavm_container_stats"), sizeof(katavm_container_stats));
  ck_assert_uint_eq(katavm_struct_size("katavm_pool_config"), sizeof(katavm_pool_config));
  ck_assert_uint_eq(katavm_struct_size("katavm_sandbox"), 0); /* opaque */
  ck_assert_uint_eq(katavm_struct_size("nope"), 0);
  ck_assert_uint_eq(katavm_struct_size(""), 0);
  ck_assert_uint_eq(katavm_struct_size(NULL), 0);
}
END_TEST

START_TEST(init_sets_size) {
  katavm_sandbox_config sc;
  memset(&sc, 0x5a, sizeof sc);
  katavm_sandbox_config_init(&sc);
  ck_assert_uint_eq(sc.struct_size, sizeof sc);
  ck_assert_ptr_null(sc.id);
  ck_assert_uint_eq(sc.max_memory_mib, 0);
  katavm_hotplug_request hr;
  memset(&hr, 0x5a, sizeof hr);
  katavm_hotplug_request_init(&hr, KATAVM_HOTPLUG_DISK_ADD);
  ck_assert_uint_eq(hr.struct_size, sizeof hr);
  ck_assert_int_eq(hr.kind, KATAVM_HOTPLUG_DISK_ADD);
  ck_assert_ptr_null(hr.mount_path);
  katavm_guest_info gi;
  memset(&gi, 0x5a, sizeof gi);
  katavm_guest_info_init(&gi);
  ck_assert_uint_eq(gi.struct_size, sizeof gi);
  ck_assert_uint_eq(gi.round_trip_us, 0);
  /* A newer caller's larger struct is zeroed as far as the caller says. */
  struct {
    katavm_exec_config c;
    unsigned char newer[24];
  } big;
  memset(&big, 0x5a, sizeof big);
  katavm_exec_config_init_sized(&big.c, sizeof big);
  ck_assert_uint_eq(big.c.struct_size, sizeof big);
  for (size_t i = 0; i < sizeof big.newer; i++)
    ck_assert_uint_eq(big.newer[i], 0);
  /* NULL and sizes that cannot hold struct_size are ignored. */
  katavm_container_config_init_sized(NULL, sizeof(katavm_container_config));
  katavm_container_config cc;
  memset(&cc, 0x5a, sizeof cc);
  katavm_container_config_init_sized(&cc, 4);
  ck_assert_uint_eq(((unsigned char *)&cc)[0], 0x5a);
}
END_TEST

/* A config followed by bytes a newer header would have fields in. */
typedef struct {
  katavm_sandbox_config c;
  unsigned char newer[16];
} BigSandboxConfig;

START_TEST(config_size_rules) {
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  katavm_sandbox_config cfg;
  katavm_sandbox_config_init(&cfg);
  cfg.id = "abi1";
  cfg.memory_mib = 64; /* refused after the size check: proves it passed */

  /* Zero: the caller skipped katavm_sandbox_config_init(). */
  cfg.struct_size = 0;
  int rc = katavm_sandbox_create(rt, &cfg, &sb, &e);
  assert_error(rc, e, KATAVM_E_INVALID, "katavm_sandbox_config: struct_size is 0");
  cfg.struct_size = 0;
  rc = katavm_sandbox_create(rt, &cfg, &sb, (e = NULL, &e));
  assert_error(rc, e, KATAVM_E_INVALID, "call katavm_sandbox_config_init()");
  /* Below the first layout. */
  cfg.struct_size = offsetof(katavm_sandbox_config, max_memory_mib);
  rc = katavm_sandbox_create(rt, &cfg, &sb, (e = NULL, &e));
  assert_error(rc, e, KATAVM_E_INVALID, "call katavm_sandbox_config_init()");
  /* Garbage (an uninitialised struct): its "tail" is never read. */
  cfg.struct_size = (size_t)1 << 40;
  rc = katavm_sandbox_create(rt, &cfg, &sb, (e = NULL, &e));
  assert_error(rc, e, KATAVM_E_INVALID, "implausibly large");
  /* Exactly the library's size. */
  cfg.struct_size = sizeof cfg;
  rc = katavm_sandbox_create(rt, &cfg, &sb, (e = NULL, &e));
  assert_error(rc, e, KATAVM_E_INVALID, "memory 64 MiB is below");

  /* Larger, from a newer header, with the newer fields unused (zero). */
  BigSandboxConfig big;
  katavm_sandbox_config_init_sized(&big.c, sizeof big);
  big.c.id = "abi1";
  big.c.memory_mib = 64;
  rc = katavm_sandbox_create(rt, &big.c, &sb, (e = NULL, &e));
  assert_error(rc, e, KATAVM_E_INVALID, "memory 64 MiB is below");
  /* Larger with a newer field set: refused, naming the struct. */
  big.newer[5] = 1;
  rc = katavm_sandbox_create(rt, &big.c, &sb, (e = NULL, &e));
  assert_error(rc, e, KATAVM_E_INVALID, "katavm_sandbox_config: struct_size");
  big.newer[5] = 0;
  big.newer[sizeof big.newer - 1] = 0x80;
  rc = katavm_sandbox_create(rt, &big.c, &sb, (e = NULL, &e));
  assert_error(rc, e, KATAVM_E_INVALID, "newer libkatavm");
  ck_assert_ptr_null(sb);
}
END_TEST

/* KATAVM_TCG_TB_CACHE_MIB: a size in range is the runtime's; anything
 * else fails katavm_runtime_new naming the variable. */
START_TEST(tb_cache_env) {
  katavm_runtime *r2 = NULL;
  katavm_error *e = NULL;
  g_setenv("KATAVM_TCG_TB_CACHE_MIB", "256", TRUE);
  ck_assert_int_eq(katavm_runtime_new(&r2, &e), 0);
  ck_assert_uint_eq(r2->tb_cache_mib, 256);
  katavm_runtime_free(r2);
  const char *bad[] = {"8", "5000", "1g", "-32", " 64", NULL};
  for (const char *const *b = bad; *b; b++) {
    g_setenv("KATAVM_TCG_TB_CACHE_MIB", *b, TRUE);
    r2 = NULL;
    e = NULL;
    int rc = katavm_runtime_new(&r2, &e);
    assert_error(rc, e, KATAVM_E_INVALID, "KATAVM_TCG_TB_CACHE_MIB");
    ck_assert_ptr_null(r2);
  }
  g_unsetenv("KATAVM_TCG_TB_CACHE_MIB");
}
END_TEST

START_TEST(sandbox_struct_size_rules) {
  /* The container, exec and hotplug configs and the guest info result,
   * against a live (fake) shim: every size refusal comes before a request;
   * the one accepted agent check is answered. */
  Run r = {0};
  katavm_sandbox *sb = open_ok(&r, FAKE_REQUEST_BACK);
  katavm_error *e = NULL;
  katavm_process *proc = NULL;

  katavm_container_config cc;
  katavm_container_config_init(&cc);
  cc.struct_size = 0;
  int rc = katavm_container_add(sb, "c1", &cc, NULL, &e);
  assert_error(rc, e, KATAVM_E_INVALID, "call katavm_container_config_init()");
  struct {
    katavm_container_config c;
    unsigned char newer[8];
  } bcc;
  katavm_container_config_init_sized(&bcc.c, sizeof bcc);
  rc = katavm_container_add(sb, "c1", &bcc.c, NULL, (e = NULL, &e));
  assert_error(rc, e, KATAVM_E_INVALID, "give either a bundle or a rootfs");
  bcc.newer[0] = 1;
  rc = katavm_container_add(sb, "c1", &bcc.c, NULL, (e = NULL, &e));
  assert_error(rc, e, KATAVM_E_INVALID, "katavm_container_config: struct_size");

  katavm_exec_config xc;
  katavm_exec_config_init(&xc);
  /* Below the first layout (which ended at no_stdin). */
  xc.struct_size = offsetof(katavm_exec_config, no_stdin) + sizeof xc.no_stdin - 1;
  rc = katavm_exec(sb, "c1", &xc, &proc, (e = NULL, &e));
  assert_error(rc, e, KATAVM_E_INVALID, "call katavm_exec_config_init()");
  struct {
    katavm_exec_config c;
    unsigned char newer[8];
  } bxc;
  katavm_exec_config_init_sized(&bxc.c, sizeof bxc);
  rc = katavm_exec(sb, "c1", &bxc.c, &proc, (e = NULL, &e));
  assert_error(rc, e, KATAVM_E_INVALID, "argv must name a command");
  bxc.newer[7] = 1;
  rc = katavm_exec(sb, "c1", &bxc.c, &proc, (e = NULL, &e));
  assert_error(rc, e, KATAVM_E_INVALID, "katavm_exec_config: struct_size");
  ck_assert_ptr_null(proc);

  katavm_hotplug_request hr;
  katavm_hotplug_request_init(&hr, KATAVM_HOTPLUG_CPUS);
  hr.struct_size = 0;
  rc = katavm_hotplug(sb, &hr, NULL, (e = NULL, &e));
  assert_error(rc, e, KATAVM_E_INVALID, "call katavm_hotplug_request_init()");
  struct {
    katavm_hotplug_request q;
    unsigned char newer[8];
  } bhr;
  katavm_hotplug_request_init_sized(&bhr.q, sizeof bhr, KATAVM_HOTPLUG_CPUS);
  rc = katavm_hotplug(sb, &bhr.q, NULL, (e = NULL, &e));
  assert_error(rc, e, KATAVM_E_INVALID, "cpus must be at least 1");
  bhr.newer[3] = 1;
  rc = katavm_hotplug(sb, &bhr.q, NULL, (e = NULL, &e));
  assert_error(rc, e, KATAVM_E_INVALID, "katavm_hotplug_request: struct_size");

  /* The result struct: the same rules, and the newer tail stays zero. */
  struct {
    katavm_guest_info gi;
    unsigned char newer[16];
  } bgi;
  katavm_guest_info_init_sized(&bgi.gi, 0);
  rc = katavm_sandbox_agent_check(sb, &bgi.gi, (e = NULL, &e));
  assert_error(rc, e, KATAVM_E_INVALID, "call katavm_guest_info_init()");
  katavm_guest_info_init_sized(&bgi.gi, sizeof bgi);
  bgi.newer[15] = 1;
  rc = katavm_sandbox_agent_check(sb, &bgi.gi, (e = NULL, &e));
  assert_error(rc, e, KATAVM_E_INVALID, "katavm_guest_info: struct_size");
  ck_assert_str_eq(bgi.gi.kernel_release, ""); /* untouched on failure */
  bgi.newer[15] = 0;
  rc = katavm_sandbox_agent_check(sb, &bgi.gi, (e = NULL, &e));
  ck_assert_msg(rc == 0, "agent check: %s", katavm_error_message(e));
  ck_assert_str_eq(bgi.gi.kernel_release, "ok");
  ck_assert_uint_eq(bgi.gi.cpus_online, 1);
  ck_assert_uint_eq(bgi.gi.struct_size, sizeof bgi);
  for (size_t i = 0; i < sizeof bgi.newer; i++)
    ck_assert_uint_eq(bgi.newer[i], 0);
  katavm_sandbox_close(sb);
  run_finish(&r);
}
END_TEST

START_TEST(result_filled_up_to_struct_size) {
  /* An older caller's smaller result struct (none exists yet: the first
   * layout is the smallest accepted) gets only what fits. */
  katavm_guest_info full = {.struct_size = sizeof full, .proto_version = 7, .cpus_online = 3};
  g_strlcpy(full.agent_version, "9.9", sizeof full.agent_version);
  katavm_guest_info out;
  memset(&out, 0x5a, sizeof out);
  out.struct_size = offsetof(katavm_guest_info, cpus_online);
  kv_abi_copy_out(KV_ABI_GUEST_INFO, &out, &full, sizeof full);
  ck_assert_uint_eq(out.struct_size, offsetof(katavm_guest_info, cpus_online));
  ck_assert_str_eq(out.agent_version, "9.9");
  ck_assert_uint_eq(out.proto_version, 7);
  ck_assert_uint_eq(((unsigned char *)&out)[offsetof(katavm_guest_info, cpus_online)], 0x5a);
  ck_assert_uint_eq(((unsigned char *)&out)[sizeof out - 1], 0x5a);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("client");
  TCase *t = tcase_create("hostile-shim");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_set_timeout(t, 60);
  tcase_add_test(t, garbage);
  tcase_add_test(t, truncated_then_close);
  tcase_add_test(t, close_at_once);
  tcase_add_test(t, oversized_length);
  tcase_add_test(t, unknown_frame_type);
  tcase_add_test(t, wrong_protocol_version);
  tcase_add_test(t, silent_shim_times_out);
  tcase_add_test(t, response_to_wrong_id);
  tcase_add_test(t, result_not_object);
  tcase_add_test(t, remote_error_keeps_code);
  tcase_add_test(t, remote_error_bogus_code);
  tcase_add_test(t, hostile_fields_bounded);
  tcase_add_test(t, huge_field_cut);
  tcase_add_test(t, shim_sends_request);
  tcase_add_test(t, no_shim_no_recovery_spawned);
  suite_add_tcase(s, t);
  TCase *a = tcase_create("abi");
  tcase_add_checked_fixture(a, setup, teardown);
  tcase_set_timeout(a, 60);
  tcase_add_test(a, struct_size_reported);
  tcase_add_test(a, init_sets_size);
  tcase_add_test(a, config_size_rules);
  tcase_add_test(a, tb_cache_env);
  tcase_add_test(a, sandbox_struct_size_rules);
  tcase_add_test(a, result_filled_up_to_struct_size);
  suite_add_tcase(s, a);
  return s;
}

int main(void) {
  SRunner *r = srunner_create(suite());
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed ? 1 : 0;
}

/* shim-v2/main.c: containerd-shim-katavm-v2, the containerd shim v2 of
 * katavm (runtime io.containerd.katavm.v2), as containerd 1.6 runs it:
 *
 *   containerd-shim-katavm-v2 -namespace NS -address ADDR -publish-binary BIN
 *       -id ID [-bundle DIR] [-debug] start|delete
 *
 * start (run in the bundle): prints the address (unix://PATH) of the shim
 *   that serves the container's pod, starting it when there is none: one
 *   shim per pod, named by the pod's sandbox id (the bundle's
 *   io.kubernetes.cri.sandbox-id annotation, else the container id), so a
 *   member container gets its sandbox's shim.
 * delete (run in the bundle, after a shim died): removes the container,
 *   and the VM when it is the sandbox, unmounts its rootfs and prints a
 *   DeleteResponse.
 * Without a command it serves the Task service over ttrpc on the socket it
 *   inherited (fd 3) until Shutdown.
 * The library is configured by the file the runtime options' ConfigPath
 * names, else the one in KATAVM_RUNTIME_CONFIG (containerd's environment,
 * inherited), else /etc/katavm/runtime.conf when it exists. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "github.com/containerd/containerd/runtime/v2/task/shim.pb-c.h"
#include "shim.h"
#include "ttrpc.h"

#define SOCKET_DIR "/run/katavm-v2"
#define DEFAULT_CONFIG "/etc/katavm/runtime.conf"

Shim *shim_global;

void shim_log(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *m = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  fprintf(stderr, "containerd-shim-katavm-v2[%d]: %s\n", (int)getpid(), m);
}

katavm_runtime *shim_runtime(const char *config_path, katavm_error **err) {
  Shim *s = shim_global;
  if (s->rt)
    return s->rt;
  katavm_runtime *rt = NULL;
  if (katavm_runtime_new(&rt, err) < 0)
    return NULL;
  /* The runtime options' ConfigPath, else KATAVM_RUNTIME_CONFIG, else the
   * OCI runtime's default file when it exists. */
  const char *cfg = config_path;
  if (!cfg || !*cfg)
    cfg = g_getenv("KATAVM_RUNTIME_CONFIG");
  if ((!cfg || !*cfg) && g_file_test(DEFAULT_CONFIG, G_FILE_TEST_EXISTS))
    cfg = DEFAULT_CONFIG;
  if (cfg && *cfg && katavm_runtime_load_config(rt, cfg, err) < 0) {
    katavm_runtime_free(rt);
    return NULL;
  }
  s->rt = rt;
  return rt;
}

/* The pod of the bundle in the current directory: its sandbox id. */
static char *pod_of(const char *bundle, const char *id) {
  katavm_bundle_info bi;
  katavm_bundle_info_init(&bi);
  char *pod = NULL;
  if (katavm_bundle_info_read(bundle, &bi, NULL) == 0 && bi.role == KATAVM_ROLE_MEMBER)
    pod = g_strdup(bi.sandbox_id);
  katavm_bundle_info_clear(&bi);
  return pod ? pod : g_strdup(id);
}

static char *socket_path(Shim *s, const char *pod) {
  g_autofree char *key = g_strdup_printf("%s\n%s\n%s", s->address ? s->address : "", s->ns, pod);
  g_autofree char *h = g_compute_checksum_for_string(G_CHECKSUM_SHA256, key, -1);
  h[32] = '\0';
  return g_strdup_printf(SOCKET_DIR "/%s.sock", h);
}

static int sock_connect(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  g_strlcpy(a.sun_path, path, sizeof(a.sun_path));
  if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
    return fd;
  if (fd >= 0)
    close(fd);
  return -1;
}

static int sock_listen(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  g_strlcpy(a.sun_path, path, sizeof(a.sun_path));
  if (fd < 0)
    return -1;
  if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

static void serve(Shim *s, int lfd) {
  signal(SIGPIPE, SIG_IGN);
  s->tasks = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, NULL);
  task_oom_watch_start(s);
  ttrpc_serve(lfd, task_handle, s, &s->stop);
  /* Let the Shutdown answer go out, and the last events. */
  g_usleep(200000);
  events_flush();
  close(lfd);
  if (s->socket_path)
    unlink(s->socket_path);
  shim_log("shut down");
}

/* BUNDLE/address, where containerd finds the shim again after a restart
 * of its own (and where Go shims write it). */
static void write_address(Shim *s) {
  g_autofree char *a = g_strdup_printf("unix://%s", s->socket_path);
  if (!g_file_set_contents("address", a, -1, NULL))
    fprintf(stderr, "cannot write the bundle's address file\n");
}

static int cmd_start(Shim *s) {
  g_autofree char *bundle = g_get_current_dir();
  g_autofree char *pod = pod_of(bundle, s->id);
  if (g_mkdir_with_parents(SOCKET_DIR, 0700) < 0) {
    fprintf(stderr, "cannot create %s: %s\n", SOCKET_DIR, g_strerror(errno));
    return 1;
  }
  s->socket_path = socket_path(s, pod);
  int lfd = -1;
  for (int tries = 0; tries < 3 && lfd < 0; tries++) {
    int c = sock_connect(s->socket_path);
    if (c >= 0) { /* the pod's shim runs: reuse it */
      close(c);
      write_address(s);
      printf("unix://%s\n", s->socket_path);
      return 0;
    }
    lfd = sock_listen(s->socket_path);
    if (lfd < 0 && errno == EADDRINUSE) /* a dead shim's socket, or a race */
      if (sock_connect(s->socket_path) < 0)
        unlink(s->socket_path);
  }
  if (lfd < 0) {
    fprintf(stderr, "listen on %s: %s\n", s->socket_path, g_strerror(errno));
    return 1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "fork: %s\n", g_strerror(errno));
    return 1;
  }
  if (pid > 0) {
    close(lfd);
    write_address(s);
    printf("unix://%s\n", s->socket_path);
    return 0;
  }
  /* The shim: its own session; stdout and stderr must not keep containerd's
   * pipe open (it reads the address until EOF). Logs go to the bundle's
   * log FIFO that containerd reads. */
  setsid();
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  dup2(null, 0);
  dup2(null, 1);
  int log = open("log", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (log >= 0) {
    fcntl(log, F_SETFL, 0);
    dup2(log, 2);
    close(log);
  } else {
    dup2(null, 2);
  }
  close(null);
  if (chdir("/") < 0)
    _exit(1);
  serve(s, lfd);
  _exit(0);
}

/* After a crash: remove what the dead shim left of container s->id. */
static int cmd_delete(Shim *s) {
  g_autofree char *cwd = g_get_current_dir();
  const char *bundle = s->bundle && *s->bundle ? s->bundle : cwd;
  katavm_error *e = NULL;
  g_autofree char *saved = g_build_filename(bundle, SHIM_CONFIG_PATH_FILE, NULL);
  g_autofree char *config_path = NULL;
  if (!g_file_get_contents(saved, &config_path, NULL, NULL))
    config_path = NULL;
  katavm_runtime *rt = shim_runtime(config_path, &e);
  if (!rt) {
    fprintf(stderr, "runtime configuration: %s\n", katavm_error_message(e));
    katavm_error_free(e);
    return 1;
  }
  katavm_bundle_info bi;
  katavm_bundle_info_init(&bi);
  gboolean member =
      katavm_bundle_info_read(bundle, &bi, NULL) == 0 && bi.role == KATAVM_ROLE_MEMBER;
  if (katavm_id_check(s->id, "container id", &e) < 0) {
    fprintf(stderr, "%s\n", katavm_error_message(e));
    katavm_error_free(e);
    katavm_bundle_info_clear(&bi);
    katavm_runtime_free(rt);
    return 1;
  }
  if (member) {
    katavm_sandbox *sb = NULL;
    if (katavm_sandbox_open(rt, bi.sandbox_id, &sb, NULL) == 0) {
      katavm_container_remove(sb, s->id, 1, NULL);
      katavm_sandbox_close(sb);
    }
  } else if (katavm_sandbox_destroy(rt, s->id, &e) < 0) {
    if (katavm_error_code(e) != KATAVM_E_NOT_FOUND)
      fprintf(stderr, "delete %s: %s\n", s->id, katavm_error_message(e));
    katavm_error_free(e);
  }
  katavm_bundle_info_clear(&bi);
  katavm_runtime_free(rt);
  g_autofree char *rootfs = g_build_filename(bundle, "rootfs", NULL);
  mounts_remove(rootfs);
  g_autofree char *pod = pod_of(bundle, s->id);
  g_autofree char *sock = socket_path(s, pod);
  if (!member) {
    int c = sock_connect(sock);
    if (c < 0)
      unlink(sock);
    else
      close(c);
  }
  Containerd__Task__V2__DeleteResponse resp = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  gint64 now = g_get_real_time();
  ts.seconds = now / G_USEC_PER_SEC;
  ts.nanos = (int32_t)(now % G_USEC_PER_SEC) * 1000;
  resp.exit_status = 128 + SIGKILL;
  resp.exited_at = &ts;
  size_t n = containerd__task__v2__delete_response__get_packed_size(&resp);
  uint8_t *b = g_malloc(n ? n : 1);
  containerd__task__v2__delete_response__pack(&resp, b);
  fwrite(b, 1, n, stdout);
  g_free(b);
  return 0;
}

static const char *usage =
    "usage: containerd-shim-katavm-v2 -namespace NS -address ADDR -publish-binary BIN -id ID\n"
    "       [-bundle DIR] [-debug] start|delete\n";

/* What main's parse allocated, freed on the way out of a command (the
 * shim itself never comes back here: it _exits at the end of serve()).
 * Returns rc. */
static int args_free(Shim *s, int rc) {
  g_free(s->ns);
  g_free(s->address);
  g_free(s->publish_binary);
  g_free(s->id);
  g_free(s->bundle);
  g_free(s->socket_path);
  return rc;
}

int main(int argc, char **argv) {
  Shim s = {0};
  g_mutex_init(&s.lock);
  g_cond_init(&s.exited);
  shim_global = &s;
  const char *cmd = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    /* Go's flag package: -name value, --name value, -name=value. */
    const char *name = a[0] == '-' ? a + (a[1] == '-' ? 2 : 1) : NULL;
    if (!name) {
      if (cmd) {
        fprintf(stderr, "unexpected argument %s\n%s", a, usage);
        return args_free(&s, 2);
      }
      cmd = a;
      continue;
    }
    g_autofree char *key = g_strdup(name);
    char *eq = strchr(key, '=');
    const char *val = NULL;
    if (eq) {
      *eq = '\0';
      val = eq + 1;
    }
    if (!strcmp(key, "debug")) {
      s.debug = TRUE;
      continue;
    }
    if (!strcmp(key, "v") || !strcmp(key, "version")) {
      printf("containerd-shim-katavm-v2 %s\n", katavm_version());
      return args_free(&s, 0);
    }
    char **slot = !strcmp(key, "namespace")        ? &s.ns
                  : !strcmp(key, "address")        ? &s.address
                  : !strcmp(key, "publish-binary") ? &s.publish_binary
                  : !strcmp(key, "id")             ? &s.id
                  : !strcmp(key, "bundle")         ? &s.bundle
                                                   : NULL;
    if (!slot) {
      fprintf(stderr, "unknown flag %s\n%s", a, usage);
      return args_free(&s, 2);
    }
    if (!val) {
      if (i + 1 >= argc) {
        fprintf(stderr, "flag %s needs a value\n%s", a, usage);
        return args_free(&s, 2);
      }
      val = argv[++i];
    }
    g_free(*slot);
    *slot = g_strdup(val);
  }
  if (!s.ns)
    s.ns = g_strdup(g_getenv("NAMESPACE") ? g_getenv("NAMESPACE") : "default");
  if (!cmd || !s.id) {
    fprintf(stderr, "%s", usage);
    return args_free(&s, 2);
  }
  if (katavm_id_check(s.id, "-id", NULL) < 0) {
    fprintf(stderr, "-id %s: not a valid container id\n", s.id);
    return args_free(&s, 2);
  }
  int rc = 2;
  if (!strcmp(cmd, "start"))
    rc = cmd_start(&s);
  else if (!strcmp(cmd, "delete"))
    rc = cmd_delete(&s);
  else
    fprintf(stderr, "unknown command %s\n%s", cmd, usage);
  return args_free(&s, rc);
}

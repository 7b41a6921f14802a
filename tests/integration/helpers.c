/* tests/integration/helpers.c: see helpers.h. */
#include "helpers.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <poll.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *kvt_root(void) {
  const char *r = g_getenv("KATAVM_TEST_ROOT");
  return (r && *r) ? r : "/tmp/kvt";
}

katavm_runtime *kvt_runtime(void) {
  katavm_runtime *rt = NULL;
  katavm_error *e = NULL;
  g_setenv("KATAVM_ROOT", kvt_root(), TRUE);
  int rc = katavm_runtime_new(&rt, &e);
  ck_assert_msg(rc == 0, "runtime: %s", katavm_error_message(e));
  return rt;
}

int kvt_count_vms(void) {
  int n = 0;
  g_autoptr(GDir) d = g_dir_open("/proc", 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name(d))) {
    if (atoi(name) <= 0)
      continue;
    g_autofree char *path = g_strdup_printf("/proc/%s/cmdline", name);
    g_autofree char *cmd = NULL;
    gsize len = 0;
    if (!g_file_get_contents(path, &cmd, &len, NULL) || len == 0)
      continue;
    for (gsize i = 0; i + 1 < len; i++)
      if (!cmd[i])
        cmd[i] = ' ';
    if (g_str_has_prefix(cmd, "/usr/bin/qemu-system") && strstr(cmd, kvt_root()))
      n++;
  }
  return n;
}

/* fn(pid, its command line with NULs as spaces, user) for every process
 * but this one and ctest. */
static void each_cmdline(void (*fn)(long pid, const char *cmd, gpointer user), gpointer user) {
  DIR *d = opendir("/proc");
  struct dirent *de;
  while (d && (de = readdir(d))) {
    char *end;
    long pid = strtol(de->d_name, &end, 10);
    if (*end || pid == getpid())
      continue;
    g_autofree char *path = g_strdup_printf("/proc/%ld/cmdline", pid);
    g_autofree char *cmd = NULL;
    gsize len = 0;
    if (!g_file_get_contents(path, &cmd, &len, NULL))
      continue;
    for (gsize i = 0; i + 1 < len; i++)
      if (!cmd[i])
        cmd[i] = ' ';
    if (!strstr(cmd, "ctest"))
      fn(pid, cmd, user);
  }
  if (d)
    closedir(d);
}

typedef struct {
  const char *a, *b;
  int n;
  long pid;
} Match;

static void match_one(long pid, const char *cmd, gpointer user) {
  Match *m = user;
  if (strstr(cmd, m->a) && (!m->b || strstr(cmd, m->b))) {
    m->n++;
    m->pid = pid;
  }
}

int kvt_count_procs(const char *needle) {
  Match m = {.a = needle};
  each_cmdline(match_one, &m);
  return m.n;
}

pid_t kvt_find_proc(const char *a, const char *b) {
  Match m = {.a = a, .b = b};
  each_cmdline(match_one, &m);
  ck_assert_msg(m.n <= 1, "%d processes match '%s' and '%s'", m.n, a, b ? b : "");
  return m.n ? (pid_t)m.pid : 0;
}

int kvt_count_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  while (d && readdir(d))
    n++;
  if (d)
    closedir(d);
  return n - 3; /* ".", "..", and the DIR's own fd */
}

static int count_dir(const char *sub) {
  g_autofree char *p = g_build_filename(kvt_root(), sub, NULL);
  int n = 0;
  DIR *d = opendir(p);
  struct dirent *de;
  while (d && (de = readdir(d)))
    if (de->d_name[0] != '.')
      n++;
  if (d)
    closedir(d);
  return n;
}

static int count_mounts(void) {
  g_autofree char *m = NULL;
  if (!g_file_get_contents("/proc/self/mountinfo", &m, NULL, NULL))
    return 0;
  int n = 0;
  for (char *p = m; (p = strstr(p, kvt_root())); p++)
    n++;
  return n;
}

void kvt_assert_clean(void) {
  ck_assert_int_eq(count_dir("sandboxes"), 0);
  ck_assert_int_eq(count_dir("r"), 0);
  ck_assert_int_eq(count_mounts(), 0);
  g_autofree char *shims = g_strdup_printf("--root %s ", kvt_root());
  g_autofree char *needle = g_strdup_printf("%s/", kvt_root());
  /* A shim whose VM is gone may still be on its way out (its last state
   * write, its reaper child): not a leak. Bounded: one that stays is. */
  for (int i = 0; i < 200 && (kvt_count_procs(shims) > 0 || kvt_count_procs(needle) > 0); i++)
    g_usleep(100000);
  ck_assert_int_eq(kvt_count_procs(shims), 0);
  ck_assert_int_eq(kvt_count_procs(needle), 0);
}

void kvt_sweep(void) {
  /* Runs outside tests too (end of main): no ck_assert here. */
  katavm_runtime *rt = NULL;
  g_setenv("KATAVM_ROOT", kvt_root(), TRUE);
  char **ids = NULL;
  if (katavm_runtime_new(&rt, NULL) == 0) {
    /* A warm pool's keeper would boot VMs behind the sweep's back. */
    katavm_error *pe = NULL;
    if (katavm_pool_remove(rt, &pe) < 0) {
      fprintf(stderr, "sweep: %s\n", katavm_error_message(pe));
      katavm_error_free(pe);
    }
  }
  if (rt && katavm_sandbox_list(rt, &ids, NULL) == 0) {
    for (char **p = ids; *p; p++) {
      katavm_error *e = NULL;
      if (katavm_sandbox_destroy(rt, *p, &e) < 0) {
        fprintf(stderr, "sweep: %s\n", katavm_error_message(e));
        katavm_error_free(e);
      }
    }
    katavm_strv_free(ids);
  }
  katavm_runtime_free(rt);
  /* Anything still alive that names our root is a leak of a failed test:
   * kill it so the next test starts clean (the assertions report it). */
  g_autofree char *cmd =
      g_strdup_printf("pkill -9 -f 'katavm-shim.*--root %s' ; pkill -9 -f 'qemu-system.*%s/' ; "
                      "grep -o ' %s[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l ; "
                      "rm -rf %s/sandboxes %s/r %s/pool",
                      kvt_root(), kvt_root(), kvt_root(), kvt_root(), kvt_root(), kvt_root());
  int rc = system(cmd);
  (void)rc;
}

void kvt_setup(void) {
  g_mkdir_with_parents(kvt_root(), 0700);
  kvt_sweep();
}

void kvt_teardown(void) {
  kvt_sweep();
}

int kvt_cli(char **out, char **err, ...) {
  /* A caller may reuse its out/err: the previous strings are freed. */
  if (out)
    g_clear_pointer(out, g_free);
  if (err)
    g_clear_pointer(err, g_free);
  const char *cli = g_getenv("KATAVM_CLI");
  ck_assert_msg(cli != NULL, "KATAVM_CLI not set");
  g_autoptr(GPtrArray) argv = g_ptr_array_new();
  g_ptr_array_add(argv, (char *)cli);
  va_list ap;
  va_start(ap, err);
  const char *a;
  while ((a = va_arg(ap, const char *)))
    g_ptr_array_add(argv, (char *)a);
  va_end(ap);
  g_ptr_array_add(argv, NULL);
  g_setenv("KATAVM_ROOT", kvt_root(), TRUE);
  int status = -1;
  g_autoptr(GError) e = NULL;
  gboolean ok =
      g_spawn_sync(NULL, (char **)argv->pdata, NULL, 0, NULL, NULL, out, err, &status, &e);
  ck_assert_msg(ok, "spawn %s: %s", cli, e ? e->message : "?");
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

katavm_sandbox *kvt_create(katavm_runtime *rt, const char *id) {
  katavm_sandbox_config cfg;
  katavm_sandbox_config_init(&cfg);
  cfg.id = id;
  cfg.vcpus = 1;
  cfg.memory_mib = 256;
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  int rc = katavm_sandbox_create(rt, &cfg, &sb, &e);
  ck_assert_msg(rc == 0, "create %s: %s", id ? id : "(auto)", katavm_error_message(e));
  return sb;
}

void kvt_assert_error(int rc, katavm_error *e, int code, const char *needle) {
  ck_assert_msg(rc == code, "expected %s (%d), got %d: %s", katavm_code_name(code), code, rc,
                katavm_error_message(e));
  ck_assert_int_eq(katavm_error_code(e), code);
  ck_assert_msg(strstr(katavm_error_message(e), needle), "error '%s' does not mention '%s'",
                katavm_error_message(e), needle);
  katavm_error_free(e);
}

char *kvt_make_rootfs(const char *dir, gboolean bundle) {
  const char *src = g_getenv("KATAVM_SOURCE_DIR");
  ck_assert_msg(src != NULL, "KATAVM_SOURCE_DIR not set");
  g_autofree char *script = g_build_filename(src, "tests", "rootfs", "mkrootfs.sh", NULL);
  /* Writable: tests write into container roots. */
  const char *argv[] = {script, "--writable", bundle ? "--bundle" : dir, bundle ? dir : NULL, NULL};
  int status = -1;
  g_autofree char *err = NULL;
  g_autoptr(GError) e = NULL;
  ck_assert_msg(g_spawn_sync(NULL, (char **)argv, NULL, 0, NULL, NULL, NULL, &err, &status, &e),
                "mkrootfs: %s", e ? e->message : "?");
  ck_assert_msg(g_spawn_check_wait_status(status, NULL), "mkrootfs failed: %s", err);
  return g_strdup(dir);
}

int kvt_drain(katavm_process *p, char **out, char **err) {
  /* A caller may reuse its out/err: the previous strings are freed. */
  if (out)
    g_clear_pointer(out, g_free);
  if (err)
    g_clear_pointer(err, g_free);
  GString *o = g_string_new(NULL), *e = g_string_new(NULL);
  int fds[2] = {katavm_process_stdout_fd(p), katavm_process_stderr_fd(p)};
  GString *bufs[2] = {o, e};
  char buf[65536];
  while (fds[0] >= 0 || fds[1] >= 0) {
    struct pollfd pf[2];
    int n = 0, map[2];
    for (int k = 0; k < 2; k++)
      if (fds[k] >= 0) {
        pf[n] = (struct pollfd){.fd = fds[k], .events = POLLIN};
        map[n++] = k;
      }
    if (poll(pf, (nfds_t)n, 120000) <= 0)
      ck_abort_msg("no output from the process for 120 s");
    for (int j = 0; j < n; j++) {
      if (!pf[j].revents)
        continue;
      ssize_t r = read(fds[map[j]], buf, sizeof(buf));
      if (r > 0)
        g_string_append_len(bufs[map[j]], buf, r);
      else if (r == 0 || errno != EAGAIN)
        fds[map[j]] = -1;
    }
  }
  int code = -1;
  katavm_error *ke = NULL;
  int rc = katavm_process_wait(p, 120000, &code, &ke);
  ck_assert_msg(rc == 0, "wait: %s", katavm_error_message(ke));
  if (out)
    *out = g_string_free(o, FALSE);
  else
    g_string_free(o, TRUE);
  if (err)
    *err = g_string_free(e, FALSE);
  else
    g_string_free(e, TRUE);
  return code;
}

int kvt_exec(katavm_sandbox *sb, const char *cid, const char *const *argv, const char *stdin_data,
             char **out, char **err) {
  katavm_exec_config cfg;
  katavm_exec_config_init(&cfg);
  cfg.argv = argv;
  katavm_process *p = NULL;
  katavm_error *e = NULL;
  int rc = katavm_exec(sb, cid, &cfg, &p, &e);
  ck_assert_msg(rc == 0, "exec %s in %s: %s", argv[0], cid, katavm_error_message(e));
  if (stdin_data) {
    int fd = katavm_process_stdin_fd(p);
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    ck_assert_int_eq(write(fd, stdin_data, strlen(stdin_data)), (ssize_t)strlen(stdin_data));
  }
  katavm_process_close_stdin(p, NULL);
  int code = kvt_drain(p, out, err);
  katavm_process_free(p);
  return code;
}

int kvt_cli_stdin(const char *stdin_data, char **out, char **err, ...) {
  /* A caller may reuse its out/err: the previous strings are freed. */
  if (out)
    g_clear_pointer(out, g_free);
  if (err)
    g_clear_pointer(err, g_free);
  const char *cli = g_getenv("KATAVM_CLI");
  g_autoptr(GPtrArray) argv = g_ptr_array_new();
  g_ptr_array_add(argv, (char *)cli);
  va_list ap;
  va_start(ap, err);
  const char *a;
  while ((a = va_arg(ap, const char *)))
    g_ptr_array_add(argv, (char *)a);
  va_end(ap);
  g_ptr_array_add(argv, NULL);
  g_setenv("KATAVM_ROOT", kvt_root(), TRUE);
  g_autoptr(GSubprocess) sp =
      g_subprocess_newv((const char *const *)argv->pdata,
                        G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                            G_SUBPROCESS_FLAGS_STDERR_PIPE,
                        NULL);
  ck_assert(sp != NULL);
  g_autoptr(GError) e = NULL;
  ck_assert(g_subprocess_communicate_utf8(sp, stdin_data, NULL, out, err, &e));
  return g_subprocess_get_if_exited(sp) ? g_subprocess_get_exit_status(sp)
                                        : 128 + g_subprocess_get_term_sig(sp);
}

void kvt_spec_add_cap(JsonObject *spec, const char *cap) {
  JsonObject *proc = json_object_get_object_member(spec, "process");
  JsonObject *caps = json_object_get_object_member(proc, "capabilities");
  GList *names = json_object_get_members(caps);
  for (GList *l = names; l; l = l->next)
    json_array_add_string_element(json_object_get_array_member(caps, l->data), cap);
  g_list_free(names);
}

void kvt_edit_spec(const char *bundle, void (*edit)(JsonObject *, gpointer), gpointer user) {
  g_autofree char *path = g_build_filename(bundle, "config.json", NULL);
  g_autoptr(JsonParser) p = json_parser_new();
  ck_assert(json_parser_load_from_file(p, path, NULL));
  JsonNode *root = json_parser_get_root(p);
  edit(json_node_get_object(root), user);
  g_autofree char *s = json_to_string(root, TRUE);
  ck_assert(g_file_set_contents(path, s, -1, NULL));
}

int kvt_run_suite(Suite *s) {
  SRunner *r = srunner_create(s);
  srunner_run_all(r, CK_VERBOSE);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  kvt_sweep();
  return failed ? 1 : 0;
}

char *kvt_workdir_new(const char *name) {
  char *dir = name ? g_strdup_printf("%s-work-%s", kvt_root(), name)
                   : g_strdup_printf("%s-work", kvt_root());
  g_autofree char *cmd = g_strdup_printf("rm -rf %s", dir);
  ck_assert_int_eq(system(cmd), 0);
  ck_assert_int_eq(g_mkdir_with_parents(dir, 0755), 0);
  return dir;
}

void kvt_workdir_drop(char **dir) {
  if (!*dir)
    return;
  g_autofree char *cmd = g_strdup_printf("rm -rf %s", *dir);
  int rc = system(cmd);
  (void)rc;
  g_clear_pointer(dir, g_free);
}

char *kvt_disk_image(const char *path, guint mib, const char *text, gboolean loop) {
  g_autofree char *src = g_strdup_printf("%s.src", path);
  g_autofree char *cmd =
      g_strdup_printf("rm -rf '%s' && mkdir '%s' && printf '%%s\\n' '%s' > '%s/hello.txt' && "
                      "truncate -s %uM '%s' && mkfs.ext4 -q -F -d '%s' '%s' && rm -rf '%s'",
                      src, src, text, src, mib, path, src, path, src);
  ck_assert_msg(system(cmd) == 0, "%s", cmd);
  if (!loop)
    return NULL;
  g_autofree char *lcmd = g_strdup_printf("losetup -f --show '%s'", path);
  char *out = NULL;
  int st = 0;
  ck_assert(g_spawn_command_line_sync(lcmd, &out, NULL, &st, NULL));
  ck_assert_msg(g_spawn_check_wait_status(st, NULL) && g_str_has_prefix(out, "/dev/loop"),
                "%s gave '%s'", lcmd, out);
  return g_strstrip(out);
}

void kvt_loop_drop(char **dev) {
  if (!*dev)
    return;
  g_autofree char *cmd = g_strdup_printf("losetup -d %s", *dev);
  g_spawn_command_line_sync(cmd, NULL, NULL, NULL, NULL);
  g_clear_pointer(dev, g_free);
}

/* ---- the warm pool of kvt_root() ---- */

JsonObject *kvt_pool_list(katavm_runtime *rt) {
  char *out = NULL;
  katavm_error *e = NULL;
  ck_assert_msg(katavm_pool_list(rt, &out, &e) == 0, "pool list: %s", katavm_error_message(e));
  g_autoptr(JsonParser) p = json_parser_new();
  ck_assert_msg(json_parser_load_from_data(p, out, -1, NULL), "not JSON: %s", out);
  katavm_free(out);
  return json_object_ref(json_node_get_object(json_parser_get_root(p)));
}

/* The first ready pooled VM's instance id, or NULL. */
char *kvt_pool_ready_vm(katavm_runtime *rt) {
  g_autoptr(JsonObject) o = kvt_pool_list(rt);
  JsonArray *vms = json_object_get_array_member(o, "vms");
  for (guint i = 0; i < json_array_get_length(vms); i++) {
    JsonObject *vm = json_array_get_object_element(vms, i);
    if (json_object_get_boolean_member(vm, "ready"))
      return g_strdup(json_object_get_string_member(vm, "instance"));
  }
  return NULL;
}

gboolean kvt_pool_has(katavm_runtime *rt, const char *inst) {
  g_autoptr(JsonObject) o = kvt_pool_list(rt);
  JsonArray *vms = json_object_get_array_member(o, "vms");
  for (guint i = 0; i < json_array_get_length(vms); i++)
    if (!g_strcmp0(json_object_get_string_member(json_array_get_object_element(vms, i), "instance"),
                   inst))
      return TRUE;
  return FALSE;
}

/* Wait (bounded: a hang, not a timing limit) for a ready pooled VM. */
char *kvt_pool_wait_ready(katavm_runtime *rt) {
  for (int i = 0; i < 3000; i++) {
    char *inst = kvt_pool_ready_vm(rt);
    if (inst)
      return inst;
    g_usleep(100000);
  }
  g_autofree char *log = NULL;
  g_autofree char *lp = g_build_filename(kvt_root(), "pool", "keeper.log", NULL);
  g_file_get_contents(lp, &log, NULL, NULL);
  ck_abort_msg("no pooled VM became ready within 300 s; keeper.log:\n%s", log ? log : "");
  return NULL;
}

/* The pooled VM a sandbox was served by, or NULL for a cold boot. */
char *kvt_instance_of(const char *id) {
  g_autofree char *path = g_build_filename(kvt_root(), "sandboxes", id, "instance", NULL);
  char *s = NULL;
  if (!g_file_get_contents(path, &s, NULL, NULL))
    return NULL;
  return g_strchomp(s);
}

void kvt_pool_start(katavm_runtime *rt, unsigned size, unsigned cpus, unsigned mem) {
  katavm_pool_config pc;
  katavm_pool_config_init(&pc);
  pc.size = size;
  pc.max_vcpus = cpus;
  pc.max_memory_mib = mem;
  katavm_error *e = NULL;
  ck_assert_msg(katavm_pool_start(rt, &pc, &e) == 0, "pool start: %s", katavm_error_message(e));
}

guint kvt_free_port(gboolean udp) {
  int fd = socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

char *kvt_http_get_local(guint port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return NULL;
  struct timeval tv = {.tv_sec = 30};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                          .sin_port = htons((guint16)port)};
  const char req[] = "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n";
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
      write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
    close(fd);
    return NULL;
  }
  GString *resp = g_string_new(NULL);
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0)
    g_string_append_len(resp, buf, n);
  close(fd);
  return g_string_free(resp, FALSE);
}

/* tests/integration/test_pool.c: the warm pool (docs/pool.md): a pooled
 * sandbox gets the vCPUs and memory it asked for, a fresh id, a fresh
 * guest RNG and nothing of another sandbox; an empty pool and a request
 * beyond the pool's shape get a cold boot; `sandbox create` and `run` of
 * the CLI take from the pool too; a killed keeper leaves no VM; a pooled
 * VM whose shim or QEMU dies is replaced and leaves nothing; `pool rm`
 * leaves nothing; bad input is refused with nothing left behind. Pools
 * of 1-2 VMs: the machine has two cores. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

static char *pool_path(const char *name) {
  return g_build_filename(kvt_root(), "pool", name, NULL);
}

static katavm_sandbox *create(katavm_runtime *rt, const char *id, unsigned cpus, unsigned mem) {
  katavm_sandbox_config cfg;
  katavm_sandbox_config_init(&cfg);
  cfg.id = id;
  cfg.vcpus = cpus;
  cfg.memory_mib = mem;
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  ck_assert_msg(katavm_sandbox_create(rt, &cfg, &sb, &e) == 0, "create %s: %s", id,
                katavm_error_message(e));
  return sb;
}

static void guest_size(katavm_sandbox *sb, unsigned *cpus, unsigned *mem_mib) {
  katavm_guest_info gi;
  katavm_guest_info_init(&gi);
  katavm_error *e = NULL;
  ck_assert_msg(katavm_sandbox_agent_check(sb, &gi, &e) == 0, "check: %s", katavm_error_message(e));
  *cpus = gi.cpus_online;
  *mem_mib = (unsigned)(gi.mem_total_kib / 1024);
}

static void add_container(katavm_sandbox *sb, const char *id, const char *rootfs) {
  katavm_container_config cc;
  katavm_container_config_init(&cc);
  cc.rootfs = rootfs;
  const char *argv[] = {"/bin/sleep", "100000", NULL};
  cc.argv = argv;
  katavm_error *e = NULL;
  ck_assert_msg(katavm_container_add(sb, id, &cc, NULL, &e) == 0, "add %s: %s", id,
                katavm_error_message(e));
  ck_assert_msg(katavm_container_start(sb, id, &e) == 0, "start %s: %s", id,
                katavm_error_message(e));
}

/* 32 bytes of /dev/urandom (hex) and the boot id, read in a container. */
static void rng_and_boot_id(katavm_sandbox *sb, const char *cid, char **bytes, char **boot_id) {
  const char *argv[] = {"/bin/sh", "-c",
                        "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; "
                        "cat /proc/sys/kernel/random/boot_id",
                        NULL};
  g_autofree char *out = NULL, *err = NULL;
  ck_assert_msg(kvt_exec(sb, cid, argv, NULL, &out, &err) == 0, "exec: %s", err);
  g_auto(GStrv) l = g_strsplit(out, "\n", -1);
  ck_assert_msg(g_strv_length(l) >= 2 && strlen(l[0]) == 64 && strlen(l[1]) == 36, "output: %s",
                out);
  *bytes = g_strdup(l[0]);
  *boot_id = g_strdup(l[1]);
}

static int count_entries(const char *dir) {
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  int n = 0;
  while (d && g_dir_read_name(d))
    n++;
  return n;
}

static void destroy(katavm_runtime *rt, katavm_sandbox *sb) {
  g_autofree char *id = g_strdup(katavm_sandbox_id(sb));
  katavm_sandbox_close(sb);
  katavm_error *e = NULL;
  ck_assert_msg(katavm_sandbox_destroy(rt, id, &e) == 0, "destroy %s: %s", id,
                katavm_error_message(e));
}

START_TEST(pooled_sandboxes_sized_fresh_and_fallback) {
  g_autofree char *dir = kvt_workdir_new("pool");
  g_autofree char *rootfs = kvt_make_rootfs(dir, FALSE);
  katavm_runtime *rt = kvt_runtime();
  kvt_pool_start(rt, 1, 2, 512);

  /* A pooled sandbox gets what it asked for, by hotplug. */
  g_autofree char *x1 = kvt_pool_wait_ready(rt);
  katavm_sandbox *a = create(rt, "pa", 2, 384);
  g_autofree char *ia = kvt_instance_of("pa");
  ck_assert_msg(!g_strcmp0(ia, x1), "pa was not served by pooled VM %s (instance %s)", x1, ia);
  ck_assert(!kvt_pool_has(rt, x1));
  unsigned cpus = 0, mem = 0;
  guest_size(a, &cpus, &mem);
  ck_assert_uint_eq(cpus, 2);
  /* MemTotal is what the guest has beside its kernel's reservations. */
  ck_assert_msg(mem > 384 - 100 && mem <= 384, "pa has %u MiB, asked 384", mem);
  add_container(a, "web", rootfs);
  g_autofree char *bytes_a = NULL, *boot_a = NULL;
  rng_and_boot_id(a, "web", &bytes_a, &boot_a);

  /* The next one: another VM, nothing of the first. */
  g_autofree char *x2 = kvt_pool_wait_ready(rt);
  ck_assert_str_ne(x1, x2);
  katavm_sandbox *b = create(rt, "pb", 1, 256);
  katavm_error *e = NULL;
  g_autofree char *ib = kvt_instance_of("pb");
  ck_assert_msg(!g_strcmp0(ib, x2), "pb was not served by pooled VM %s (instance %s)", x2, ib);
  /* Taken the moment it was ready: its guest's late boot (modules, the
   * share) was done before the keeper said ready, so that nothing the
   * first container needs is still under way. */
  char *pb_js = NULL;
  ck_assert_msg(katavm_sandbox_inspect(b, &pb_js, &e) == 0, "inspect pb: %s",
                katavm_error_message(e));
  ck_assert_msg(strstr(pb_js, "\"late_boot_done\":true"), "pb's guest is still booting: %s", pb_js);
  katavm_free(pb_js);

  /* The pool is empty now (its refill boots): a cold boot. */
  g_autofree char *none = kvt_pool_ready_vm(rt);
  ck_assert_msg(none == NULL, "the refill %s was ready within moments", none);
  katavm_sandbox *c = create(rt, "pc", 1, 256);
  g_autofree char *ic = kvt_instance_of("pc");
  ck_assert_msg(ic == NULL, "pc came from the pool (%s) though none was ready", ic);

  char **cids = NULL;
  ck_assert_msg(katavm_container_list(b, &cids, &e) == 0, "list: %s", katavm_error_message(e));
  ck_assert_msg(cids[0] == NULL, "pb has a container '%s' already", cids[0]);
  katavm_strv_free(cids);
  g_autofree char *shared_b = g_build_filename(kvt_root(), "sandboxes", "pb", "shared", NULL);
  ck_assert_int_eq(count_entries(shared_b), 0);
  add_container(b, "web", rootfs);
  g_autofree char *bytes_b = NULL, *boot_b = NULL;
  rng_and_boot_id(b, "web", &bytes_b, &boot_b);
  ck_assert_msg(strcmp(bytes_a, bytes_b) != 0, "same random bytes: %s", bytes_a);
  ck_assert_msg(strcmp(boot_a, boot_b) != 0, "same boot id: %s", boot_a);
  g_autofree char *state_b = g_build_filename(kvt_root(), "sandboxes", "pb", "state.json", NULL);
  g_autofree char *st = NULL;
  ck_assert(g_file_get_contents(state_b, &st, NULL, NULL));
  ck_assert_msg(strstr(st, "\"id\":\"pb\"") || strstr(st, "\"id\": \"pb\""), "state: %s", st);
  /* A pooled sandbox whose shim dies is recovered as any other: through
   * its instance id (run dir, domain). */
  char *js = NULL;
  ck_assert_msg(katavm_sandbox_inspect(b, &js, &e) == 0, "inspect: %s", katavm_error_message(e));
  g_autoptr(JsonParser) jp = json_parser_new();
  ck_assert(json_parser_load_from_data(jp, js, -1, NULL));
  katavm_free(js);
  pid_t shim =
      (pid_t)json_object_get_int_member(json_node_get_object(json_parser_get_root(jp)), "shim_pid");
  ck_assert_int_gt(shim, 1);
  katavm_sandbox_close(b);
  ck_assert_int_eq(kill(shim, SIGKILL), 0);
  for (int i = 0; i < 100 && kill(shim, 0) == 0; i++)
    g_usleep(50000);
  ck_assert_msg(katavm_sandbox_open(rt, "pb", &b, &e) == 0, "recover pb: %s",
                katavm_error_message(e));
  guest_size(b, &cpus, &mem);
  ck_assert_uint_eq(cpus, 1);
  destroy(rt, a);
  destroy(rt, b);
  destroy(rt, c);

  /* Beyond the pool's shape: a cold boot, not an error. */
  g_autofree char *x3 = kvt_pool_wait_ready(rt);
  katavm_sandbox *d = create(rt, "pd", 3, 256);
  g_autofree char *id_ = kvt_instance_of("pd");
  ck_assert_msg(id_ == NULL, "pd (3 vCPUs, pool max 2) came from the pool (%s)", id_);
  ck_assert(kvt_pool_has(rt, x3));
  guest_size(d, &cpus, &mem);
  ck_assert_uint_eq(cpus, 3);
  destroy(rt, d);

  /* The CLI's sandbox create and run take from the same --root's pool. */
  g_autofree char *o1 = NULL, *e1 = NULL;
  ck_assert_msg(kvt_cli(&o1, &e1, "sandbox", "create", "--name", "pe", NULL) == 0, "%s", e1);
  g_autofree char *ie = kvt_instance_of("pe");
  ck_assert_msg(!g_strcmp0(ie, x3), "pe was not served by pooled VM %s (instance %s)", x3, ie);
  g_autofree char *o2 = NULL, *e2 = NULL;
  ck_assert_msg(kvt_cli(&o2, &e2, "sandbox", "rm", "-f", "pe", NULL) == 0, "%s", e2);
  g_autofree char *x4 = kvt_pool_wait_ready(rt);
  g_autofree char *o3 = NULL, *e3 = NULL;
  ck_assert_msg(kvt_cli(&o3, &e3, "run", "--rm", rootfs, "/bin/true", NULL) == 0, "%s", e3);
  ck_assert_msg(!kvt_pool_has(rt, x4), "run did not take pooled VM %s", x4);

  /* User-mode networking with a published port: QEMU's NIC and the
   * forward are added at the take, as after a cold boot. */
  g_autofree char *x5 = kvt_pool_wait_ready(rt);
  guint port = kvt_free_port(FALSE);
  g_autofree char *pub = g_strdup_printf("127.0.0.1:%u:80", port);
  g_autofree char *o6 = NULL, *e6 = NULL;
  ck_assert_msg(
      kvt_cli(&o6, &e6, "sandbox", "create", "--name", "pf", "--net", "user", "-p", pub, NULL) == 0,
      "%s", e6);
  g_autofree char *if_ = kvt_instance_of("pf");
  ck_assert_msg(!g_strcmp0(if_, x5), "pf (net user) was not served by pooled VM %s (instance %s)",
                x5, if_);
  g_clear_pointer(&e6, g_free);
  ck_assert_msg(kvt_cli(NULL, &e6, "container", "add", "pf", "web", rootfs, "--", "/bin/sh", "-c",
                        "mkdir -p /tmp/w && echo pooled-user-page > /tmp/w/index.html && "
                        "exec httpd -f -p 80 -h /tmp/w",
                        NULL) == 0 &&
                    kvt_cli(NULL, NULL, "container", "start", "pf", "web", NULL) == 0,
                "%s", e6);
  g_autofree char *page = NULL;
  for (int i = 0; i < 60 && !(page && strstr(page, "pooled-user-page")); i++) {
    g_free(page);
    page = kvt_http_get_local(port);
    if (!(page && strstr(page, "pooled-user-page")))
      g_usleep(500000);
  }
  ck_assert_msg(page && strstr(page, "pooled-user-page"), "127.0.0.1:%u answered: %s", port,
                page ? page : "(nothing)");
  ck_assert_int_eq(kvt_cli(NULL, NULL, "sandbox", "rm", "-f", "pf", NULL), 0);

  g_autofree char *o4 = NULL, *e4 = NULL;
  ck_assert_msg(kvt_cli(&o4, &e4, "pool", "ls", "--json", NULL) == 0, "%s", e4);
  ck_assert_msg(strstr(o4, "\"running\":true") && strstr(o4, "\"max_vcpus\":2"), "ls: %s", o4);
  g_autofree char *o5 = NULL, *e5 = NULL;
  ck_assert_msg(kvt_cli(&o5, &e5, "pool", "rm", NULL) == 0, "%s", e5);
  g_autofree char *pool = pool_path(NULL);
  ck_assert_msg(!g_file_test(pool, G_FILE_TEST_EXISTS), "%s is left", pool);
  ck_assert_int_eq(kvt_count_vms(), 0);
  katavm_runtime_free(rt);
  kvt_workdir_drop(&dir);
  kvt_assert_clean();
}
END_TEST

START_TEST(killed_keeper_leaves_no_vm) {
  int rc;
  katavm_runtime *rt = kvt_runtime();
  kvt_pool_start(rt, 2, 2, 512);
  /* One keeper per root. */
  katavm_pool_config pc;
  katavm_pool_config_init(&pc);
  katavm_error *e = NULL;
  rc = katavm_pool_start(rt, &pc, &e);
  kvt_assert_error(rc, e, KATAVM_E_EXISTS, "already runs");
  e = NULL;
  g_autofree char *x = kvt_pool_wait_ready(rt);
  g_autoptr(JsonObject) o = kvt_pool_list(rt);
  pid_t keeper = (pid_t)json_object_get_int_member(o, "keeper_pid");
  ck_assert_int_gt(keeper, 1);
  ck_assert_int_ge(kvt_count_vms(), 1);
  ck_assert_int_eq(kill(keeper, SIGKILL), 0);
  /* Every pooled shim sees the keeper's pipe close and destroys its VM
   * (the one booting too, once it is up) and its directory. Bounded: a
   * hang. A keeper killed between making the next VM's directory and
   * starting its shim leaves that directory, with no shim and no VM: the
   * next `pool start` (below) drains it, and the last check shows it. */
  int i = 0;
  for (; i < 3000 && (kvt_count_vms() > 0 || kvt_count_procs("--pooled") > 0); i++)
    g_usleep(100000);
  ck_assert_msg(i < 3000, "%d VM(s), %d pooled shim(s) left after 300 s", kvt_count_vms(),
                kvt_count_procs("--pooled"));
  g_autoptr(JsonObject) o2 = kvt_pool_list(rt);
  ck_assert(!json_object_get_boolean_member(o2, "running"));
  /* A fresh start after a dead keeper works; rm leaves nothing. */
  kvt_pool_start(rt, 1, 2, 512);
  g_autofree char *y = kvt_pool_wait_ready(rt);
  ck_assert_int_eq(katavm_pool_remove(rt, &e), 0);
  g_autofree char *pool = pool_path(NULL);
  ck_assert_msg(!g_file_test(pool, G_FILE_TEST_EXISTS), "%s is left", pool);
  ck_assert_int_eq(kvt_count_vms(), 0);
  katavm_runtime_free(rt);
  kvt_assert_clean();
}
END_TEST

/* Wait (bounded: a hang) until the pool holds a ready VM other than
 * `gone` and nothing of `gone` is left: no process naming it, no state
 * directory. Returns the new VM's instance. */
static char *wait_replaced(katavm_runtime *rt, const char *gone) {
  g_autofree char *dir = pool_path("vms");
  g_autofree char *gdir = g_build_filename(dir, gone, NULL);
  for (int i = 0; i < 3000; i++) {
    g_autofree char *inst = kvt_pool_ready_vm(rt);
    if (inst && strcmp(inst, gone) != 0 && !kvt_pool_has(rt, gone) && kvt_count_procs(gone) == 0 &&
        !g_file_test(gdir, G_FILE_TEST_EXISTS))
      return g_steal_pointer(&inst);
    g_usleep(100000);
  }
  g_autofree char *log = NULL;
  g_autofree char *lp = pool_path("keeper.log");
  g_file_get_contents(lp, &log, NULL, NULL);
  ck_abort_msg("pooled VM %s not replaced within 300 s (%d process(es) left); keeper.log:\n%s",
               gone, kvt_count_procs(gone), log ? log : "");
  return NULL;
}

/* A pooled VM whose shim is killed, or whose QEMU dies, is removed by the
 * keeper (or removes itself) and replaced; nothing of it is left, and a
 * take is then served by the replacement. */
START_TEST(dead_pooled_vm_is_replaced) {
  katavm_runtime *rt = kvt_runtime();
  kvt_pool_start(rt, 1, 2, 512);
  g_autofree char *a = kvt_pool_wait_ready(rt);
  pid_t shim = kvt_find_proc("--pooled", a);
  ck_assert_int_gt(shim, 1);
  ck_assert_int_eq(kvt_count_vms(), 1);
  ck_assert_int_eq(kill(shim, SIGKILL), 0);
  g_autofree char *b = wait_replaced(rt, a);
  ck_assert_int_eq(kvt_count_vms(), 1);
  /* Now its QEMU: the shim sees the VM go off and removes it. */
  pid_t qemu = kvt_find_proc("qemu-system", b);
  ck_assert_int_gt(qemu, 1);
  ck_assert_int_eq(kill(qemu, SIGKILL), 0);
  g_autofree char *c = wait_replaced(rt, b);
  ck_assert_int_eq(kvt_count_vms(), 1);
  /* The replacement serves a take. */
  katavm_sandbox *sb = create(rt, "after-dead", 1, 256);
  g_autofree char *served = kvt_instance_of("after-dead");
  ck_assert_str_eq(served ? served : "(cold)", c);
  g_autofree char *dir = kvt_workdir_new("pool-dead");
  g_autofree char *rootfs = kvt_make_rootfs(dir, FALSE);
  add_container(sb, "c1", rootfs);
  destroy(rt, sb);
  katavm_error *e = NULL;
  ck_assert_msg(katavm_pool_remove(rt, &e) == 0, "pool rm: %s", katavm_error_message(e));
  ck_assert_int_eq(kvt_count_vms(), 0);
  kvt_workdir_drop(&dir);
  katavm_runtime_free(rt);
  kvt_assert_clean();
}
END_TEST

START_TEST(bad_input_leaves_nothing) {
  int rc;
  katavm_runtime *rt = kvt_runtime();
  g_autofree char *pool = pool_path(NULL);
  katavm_pool_config pc;
  katavm_error *e = NULL;
  /* More than the host's memory. */
  katavm_pool_config_init(&pc);
  pc.size = 64;
  pc.max_memory_mib = 1024 * 1024;
  rc = katavm_pool_start(rt, &pc, &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "MemAvailable");
  e = NULL;
  ck_assert(!g_file_test(pool, G_FILE_TEST_EXISTS));
  g_autofree char *o = NULL, *err = NULL;
  ck_assert_int_ne(kvt_cli(&o, &err, "pool", "start", "--size", "64", "--memory", "1048576", NULL),
                   0);
  ck_assert_msg(strstr(err, "MemAvailable") && strstr(err, "64 VMs"), "stderr: %s", err);
  ck_assert(!g_file_test(pool, G_FILE_TEST_EXISTS));
  /* Shapes out of range. */
  katavm_pool_config_init(&pc);
  pc.max_memory_mib = 64;
  rc = katavm_pool_start(rt, &pc, &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "below the boot memory");
  e = NULL;
  katavm_pool_config_init(&pc);
  pc.size = 65;
  rc = katavm_pool_start(rt, &pc, &e);
  kvt_assert_error(rc, e, KATAVM_E_INVALID, "pool size 65");
  e = NULL;
  ck_assert(!g_file_test(pool, G_FILE_TEST_EXISTS));
  /* ROOT/pool not a directory: refused, the file kept as it was. */
  ck_assert(g_file_set_contents(pool, "mine", -1, NULL));
  katavm_pool_config_init(&pc);
  rc = katavm_pool_start(rt, &pc, &e);
  kvt_assert_error(rc, e, KATAVM_E_IO, pool);
  e = NULL;
  g_autofree char *content = NULL;
  ck_assert(g_file_get_contents(pool, &content, NULL, NULL));
  ck_assert_str_eq(content, "mine");
  ck_assert_int_eq(unlink(pool), 0);
  /* ROOT/pool not writable (root ignores modes: a read-only mount). */
  ck_assert_int_eq(mkdir(pool, 0700), 0);
  ck_assert_msg(mount("none", pool, "tmpfs", MS_RDONLY, "size=1m") == 0, "mount: %s",
                g_strerror(errno));
  rc = katavm_pool_start(rt, &pc, &e);
  kvt_assert_error(rc, e, KATAVM_E_IO, pool);
  e = NULL;
  ck_assert_int_eq(count_entries(pool), 0);
  ck_assert_int_eq(umount(pool), 0);
  ck_assert_int_eq(count_entries(pool), 0);
  ck_assert_int_eq(rmdir(pool), 0);
  ck_assert_int_eq(kvt_count_procs("--pool-keeper"), 0);
  /* No pool: rm is not an error, ls says so. */
  ck_assert_int_eq(katavm_pool_remove(rt, &e), 0);
  g_autoptr(JsonObject) l = kvt_pool_list(rt);
  ck_assert(!json_object_get_boolean_member(l, "running"));
  ck_assert_int_eq(json_array_get_length(json_object_get_array_member(l, "vms")), 0);
  ck_assert(!g_file_test(pool, G_FILE_TEST_EXISTS));
  katavm_runtime_free(rt);
  kvt_assert_clean();
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("pool");
  TCase *t = tcase_create("pool");
  tcase_add_checked_fixture(t, kvt_setup, kvt_teardown);
  tcase_set_timeout(t, 900);
  tcase_add_test(t, bad_input_leaves_nothing);
  tcase_add_test(t, pooled_sandboxes_sized_fresh_and_fallback);
  tcase_add_test(t, killed_keeper_leaves_no_vm);
  tcase_add_test(t, dead_pooled_vm_is_replaced);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  return kvt_run_suite(suite());
}

/* cli/runtime/misc.c: `features`, `spec`, and the commands that change a
 * running container: `pause`, `resume`, `update`. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rt.h"

/* What `runc features` (runc 1.1) reports, for what katavm does. */
static const char FEATURES[] =
    "{\n"
    "  \"ociVersionMin\": \"1.0.0\",\n"
    "  \"ociVersionMax\": \"1.0.2\",\n"
    "  \"hooks\": [],\n"
    "  \"mountOptions\": [\"async\", \"atime\", \"bind\", \"defaults\", \"dev\", \"diratime\",\n"
    "    \"dirsync\", \"exec\", \"mand\", \"noatime\", \"nodev\", \"nodiratime\", \"noexec\",\n"
    "    \"nomand\", \"norelatime\", \"nostrictatime\", \"nosuid\", \"private\", \"rbind\",\n"
    "    \"relatime\", \"remount\", \"ro\", \"rprivate\", \"rshared\", \"rslave\", \"rw\",\n"
    "    \"shared\", \"slave\", \"strictatime\", \"suid\", \"sync\"],\n"
    "  \"linux\": {\n"
    "    \"namespaces\": [\"cgroup\", \"ipc\", \"mount\", \"network\", \"pid\", \"uts\"],\n"
    "    \"capabilities\": [\"CAP_CHOWN\", \"CAP_DAC_OVERRIDE\", \"CAP_DAC_READ_SEARCH\",\n"
    "      \"CAP_FOWNER\", \"CAP_FSETID\", \"CAP_KILL\", \"CAP_SETGID\", \"CAP_SETUID\",\n"
    "      \"CAP_SETPCAP\", \"CAP_LINUX_IMMUTABLE\", \"CAP_NET_BIND_SERVICE\",\n"
    "      \"CAP_NET_BROADCAST\", \"CAP_NET_ADMIN\", \"CAP_NET_RAW\", \"CAP_IPC_LOCK\",\n"
    "      \"CAP_IPC_OWNER\", \"CAP_SYS_MODULE\", \"CAP_SYS_RAWIO\", \"CAP_SYS_CHROOT\",\n"
    "      \"CAP_SYS_PTRACE\", \"CAP_SYS_PACCT\", \"CAP_SYS_ADMIN\", \"CAP_SYS_BOOT\",\n"
    "      \"CAP_SYS_NICE\", \"CAP_SYS_RESOURCE\", \"CAP_SYS_TIME\", \"CAP_SYS_TTY_CONFIG\",\n"
    "      \"CAP_MKNOD\", \"CAP_LEASE\", \"CAP_AUDIT_WRITE\", \"CAP_AUDIT_CONTROL\",\n"
    "      \"CAP_SETFCAP\", \"CAP_MAC_OVERRIDE\", \"CAP_MAC_ADMIN\", \"CAP_SYSLOG\",\n"
    "      \"CAP_WAKE_ALARM\", \"CAP_BLOCK_SUSPEND\", \"CAP_AUDIT_READ\", \"CAP_PERFMON\",\n"
    "      \"CAP_BPF\", \"CAP_CHECKPOINT_RESTORE\"],\n"
    "    \"cgroup\": {\"v1\": false, \"v2\": true, \"systemd\": false, \"systemdUser\": false},\n"
    "    \"seccomp\": {\"enabled\": true,\n"
    "      \"actions\": [\"SCMP_ACT_ALLOW\", \"SCMP_ACT_ERRNO\", \"SCMP_ACT_KILL\",\n"
    "        \"SCMP_ACT_KILL_PROCESS\", \"SCMP_ACT_KILL_THREAD\", \"SCMP_ACT_LOG\",\n"
    "        \"SCMP_ACT_TRACE\", \"SCMP_ACT_TRAP\"],\n"
    "      \"operators\": [\"SCMP_CMP_EQ\", \"SCMP_CMP_GE\", \"SCMP_CMP_GT\", \"SCMP_CMP_LE\",\n"
    "        \"SCMP_CMP_LT\", \"SCMP_CMP_MASKED_EQ\", \"SCMP_CMP_NE\"],\n"
    "      \"archs\": [\"SCMP_ARCH_X86\", \"SCMP_ARCH_X86_64\", \"SCMP_ARCH_X32\"]},\n"
    "    \"apparmor\": {\"enabled\": false},\n"
    "    \"selinux\": {\"enabled\": false}\n"
    "  },\n"
    "  \"annotations\": {\n"
    "    \"io.katavm.vm\": \"true\",\n"
    "    \"io.katavm.annotations\": \"io.katavm.cpus io.katavm.memory_mib\"\n"
    "  }\n"
    "}\n";

int cmd_features(Rt *r, int argc, char **argv) {
  GOptionEntry entries[] = {{NULL}};
  if (!rt_parse(r, &argc, &argv, "", entries, FALSE))
    return 1;
  fputs(FEATURES, stdout);
  return 0;
}

int cmd_spec(Rt *r, int argc, char **argv) {
  char *bundle = NULL;
  gboolean rootless = FALSE;
  GOptionEntry entries[] = {
      {"bundle", 'b', 0, G_OPTION_ARG_FILENAME, &bundle, "where to write config.json", "DIR"},
      {"rootless", 0, 0, G_OPTION_ARG_NONE, &rootless, "accepted (the guest runs as root)", NULL},
      {NULL}};
  if (!rt_parse(r, &argc, &argv, "", entries, FALSE))
    return 1;
  g_autofree char *dir = bundle ? bundle : g_strdup(".");
  g_autofree char *path = g_build_filename(dir, "config.json", NULL);
  char *json = NULL;
  katavm_error *e = NULL;
  if (katavm_oci_default_spec(&json, &e) < 0)
    return rt_fail(r, e);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    katavm_free(json);
    if (errno == EEXIST)
      return rt_error(r, "File %s exists. Remove it first", path);
    return rt_error(r, "%s: %s", path, g_strerror(errno));
  }
  size_t n = strlen(json);
  gboolean ok = write(fd, json, n) == (ssize_t)n && write(fd, "\n", 1) == 1;
  close(fd);
  katavm_free(json);
  return ok ? 0 : rt_error(r, "writing %s failed", path);
}

/* pause, resume: the container by its one argument. */
static int control(Rt *r, int argc, char **argv,
                   int (*fn)(katavm_sandbox *, const char *, katavm_error **)) {
  GOptionEntry entries[] = {{NULL}};
  if (!rt_parse(r, &argc, &argv, "ID", entries, FALSE))
    return 1;
  if (argc < 2)
    return rt_error(r, "%s: expected a container id", argv[0]);
  RtState s;
  g_autoptr(GError) ge = NULL;
  if (!rt_state_load(r, argv[1], &s, &ge))
    return rt_error(r, "%s", ge->message);
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  int rc = rt_open_sandbox(r, &s, &sb, &e) < 0 || fn(sb, s.id, &e) < 0 ? rt_fail(r, e) : 0;
  katavm_sandbox_close(sb);
  rt_state_clear(&s);
  return rc;
}

int cmd_pause(Rt *r, int argc, char **argv) {
  return control(r, argc, argv, katavm_container_pause);
}

int cmd_resume(Rt *r, int argc, char **argv) {
  return control(r, argc, argv, katavm_container_resume);
}

/* The flags of `runc update` that name one limit each, as the
 * linux.resources fields they set. */
typedef struct {
  char *resources, *memory, *memory_reservation, *memory_swap, *cpu_quota, *cpu_period, *cpu_shares,
      *cpuset_cpus, *cpuset_mems, *pids_limit;
} UpdateFlags;

static gboolean add_int(JsonObject *res, const char *group, const char *key, const char *flag,
                        const char *v, Rt *r) {
  if (!v)
    return TRUE;
  gint64 n;
  if (!g_ascii_string_to_signed(v, 10, -1, G_MAXINT64, &n, NULL)) {
    rt_error(r, "update: --%s '%s' is not a number", flag, v);
    return FALSE;
  }
  if (!json_object_has_member(res, group))
    json_object_set_object_member(res, group, json_object_new());
  json_object_set_int_member(json_object_get_object_member(res, group), key, n);
  return TRUE;
}

static void add_str(JsonObject *res, const char *group, const char *key, const char *v) {
  if (!v)
    return;
  if (!json_object_has_member(res, group))
    json_object_set_object_member(res, group, json_object_new());
  json_object_set_string_member(json_object_get_object_member(res, group), key, v);
}

int cmd_update(Rt *r, int argc, char **argv) {
  UpdateFlags f = {0};
  GOptionEntry entries[] = {
      {"resources", 'r', 0, G_OPTION_ARG_FILENAME, &f.resources,
       "linux.resources JSON file (- = stdin)", "FILE"},
      {"memory", 0, 0, G_OPTION_ARG_STRING, &f.memory, "memory limit in bytes", "N"},
      {"memory-reservation", 0, 0, G_OPTION_ARG_STRING, &f.memory_reservation, "bytes", "N"},
      {"memory-swap", 0, 0, G_OPTION_ARG_STRING, &f.memory_swap, "memory+swap bytes", "N"},
      {"cpu-quota", 0, 0, G_OPTION_ARG_STRING, &f.cpu_quota, "CFS quota (us)", "N"},
      {"cpu-period", 0, 0, G_OPTION_ARG_STRING, &f.cpu_period, "CFS period (us)", "N"},
      {"cpu-share", 0, 0, G_OPTION_ARG_STRING, &f.cpu_shares, "CPU shares", "N"},
      {"cpuset-cpus", 0, 0, G_OPTION_ARG_STRING, &f.cpuset_cpus, "CPUs", "LIST"},
      {"cpuset-mems", 0, 0, G_OPTION_ARG_STRING, &f.cpuset_mems, "memory nodes", "LIST"},
      {"pids-limit", 0, 0, G_OPTION_ARG_STRING, &f.pids_limit, "most processes", "N"},
      {NULL}};
  int rc = 1;
  g_autoptr(JsonObject) res = NULL;
  g_autofree char *text = NULL;
  g_autoptr(GError) ge = NULL;
  RtState s = {0};
  if (!rt_parse(r, &argc, &argv, "ID", entries, FALSE))
    goto out;
  if (argc < 2) {
    rc = rt_error(r, "update: expected a container id");
    goto out;
  }
  if (f.resources) {
    gboolean ok = TRUE;
    if (!strcmp(f.resources, "-")) {
      /* containerd's runc shim pipes the resources in. */
      GString *in = g_string_new(NULL);
      char buf[4096];
      size_t n;
      while ((n = fread(buf, 1, sizeof buf, stdin)) > 0 && in->len < 1024 * 1024)
        g_string_append_len(in, buf, (gssize)n);
      text = g_string_free(in, FALSE);
    } else {
      ok = g_file_get_contents(f.resources, &text, NULL, &ge);
    }
    if (!ok) {
      rc = rt_error(r, "update: --resources %s: %s", f.resources, ge->message);
      goto out;
    }
  } else {
    res = json_object_new();
    if (!add_int(res, "memory", "limit", "memory", f.memory, r) ||
        !add_int(res, "memory", "reservation", "memory-reservation", f.memory_reservation, r) ||
        !add_int(res, "memory", "swap", "memory-swap", f.memory_swap, r) ||
        !add_int(res, "cpu", "quota", "cpu-quota", f.cpu_quota, r) ||
        !add_int(res, "cpu", "period", "cpu-period", f.cpu_period, r) ||
        !add_int(res, "cpu", "shares", "cpu-share", f.cpu_shares, r) ||
        !add_int(res, "pids", "limit", "pids-limit", f.pids_limit, r))
      goto out;
    add_str(res, "cpu", "cpus", f.cpuset_cpus);
    add_str(res, "cpu", "mems", f.cpuset_mems);
    g_autoptr(JsonNode) n = json_node_init_object(json_node_alloc(), res);
    text = json_to_string(n, FALSE);
  }
  if (!rt_state_load(r, argv[1], &s, &ge)) {
    rc = rt_error(r, "%s", ge->message);
    goto out;
  }
  katavm_sandbox *sb = NULL;
  katavm_error *e = NULL;
  rc = rt_open_sandbox(r, &s, &sb, &e) < 0 || katavm_container_update(sb, s.id, text, &e) < 0
           ? rt_fail(r, e)
           : 0;
  katavm_sandbox_close(sb);
out:
  rt_state_clear(&s);
  g_free(f.resources);
  g_free(f.memory);
  g_free(f.memory_reservation);
  g_free(f.memory_swap);
  g_free(f.cpu_quota);
  g_free(f.cpu_period);
  g_free(f.cpu_shares);
  g_free(f.cpuset_cpus);
  g_free(f.cpuset_mems);
  g_free(f.pids_limit);
  return rc;
}

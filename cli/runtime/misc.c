/* cli/runtime/misc.c: `features`, `spec`, and the commands katavm does not
 * offer yet (`pause`, `resume`, `update`), which fail clearly. */
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

static int not_yet(Rt *r, int argc, char **argv, const char *what) {
  GOptionEntry entries[] = {{NULL}};
  if (!rt_parse(r, &argc, &argv, "ID", entries, FALSE))
    return 1;
  return rt_error(r, "%s: not supported by katavm-runtime yet", what);
}

int cmd_pause(Rt *r, int argc, char **argv) {
  return not_yet(r, argc, argv, "pause");
}

int cmd_resume(Rt *r, int argc, char **argv) {
  return not_yet(r, argc, argv, "resume");
}

int cmd_update(Rt *r, int argc, char **argv) {
  return not_yet(r, argc, argv, "update");
}

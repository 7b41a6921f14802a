/* lib/util.c: sandbox ids and paths, size-capped JSON files, directory
 * removal that never crosses mounts, and the guest kernel command line. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "proto.h"

#define KV_JSON_FILE_MAX (1024 * 1024)

gboolean kv_id_validate(const char *id, GError **error) {
  if (!id || !*id) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "sandbox id is empty");
    return FALSE;
  }
  size_t n = strlen(id);
  if (n > KATAVM_ID_MAX) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                "id '%.20s...' is %zu characters long; the limit is %u", id, n, KATAVM_ID_MAX);
    return FALSE;
  }
  if (strstr(id, "..")) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "id '%s' contains '..'", id);
    return FALSE;
  }
  if (!g_ascii_isalnum(id[0])) {
    g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "id '%s' must start with a letter or digit", id);
    return FALSE;
  }
  for (const char *p = id; *p; p++) {
    if (!g_ascii_isalnum(*p) && *p != '_' && *p != '-' && *p != '.') {
      if (*p == '/')
        g_set_error(error, KV_ERROR, KATAVM_E_INVALID, "id '%s' contains '/'", id);
      else
        g_set_error(error, KV_ERROR, KATAVM_E_INVALID,
                    "id contains character 0x%02x; allowed are letters, "
                    "digits, '_', '-' and '.'",
                    (unsigned char)*p);
      return FALSE;
    }
  }
  return TRUE;
}

char *kv_id_generate(void) {
  guint8 b[8];
  for (size_t i = 0; i < sizeof(b); i++)
    b[i] = (guint8)g_random_int_range(0, 256);
  return g_strdup_printf("%02x%02x%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5],
                         b[6], b[7]);
}

void kv_paths_init_dir(KvPaths *p, const char *root, const char *dir, const char *instance) {
  memset(p, 0, sizeof(*p));
  /* Sockets live under a short hashed dir: sun_path holds 108 bytes and
   * libvirt nests its own sockets below the embedded root. */
  g_autofree char *hash = g_compute_checksum_for_string(G_CHECKSUM_SHA256, instance, -1);
  hash[12] = '\0';
  p->root = g_strdup(root);
  p->dir = g_strdup(dir);
  p->instance = g_strdup(instance);
  p->run = g_build_filename(root, "r", hash, NULL);
  p->shared = g_build_filename(p->dir, "shared", NULL);
  p->config = g_build_filename(p->dir, "config.json", NULL);
  p->state = g_build_filename(p->dir, "state.json", NULL);
  p->console = g_build_filename(p->dir, "console.log", NULL);
  p->shim_log = g_build_filename(p->dir, "shim.log", NULL);
  p->shim_sock = g_build_filename(p->run, "shim.sock", NULL);
  p->agent_sock = g_build_filename(p->run, "agent.sock", NULL);
  p->vmm_root = g_build_filename(p->run, "v", NULL);
  p->caps_cache = g_build_filename(root, "cache", "qemu", NULL);
  p->domain = g_strdup_printf("katavm-%s", instance);
}

void kv_paths_init(KvPaths *p, const char *root, const char *id) {
  g_autofree char *dir = g_build_filename(root, "sandboxes", id, NULL);
  /* A sandbox served from the pool keeps the VM's instance id (a running
   * libvirt domain cannot be renamed): DIR/instance names it. Small, read
   * without following a link; anything invalid means "none". */
  g_autofree char *inst = NULL;
  g_autofree char *path = g_build_filename(dir, "instance", NULL);
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) {
    char buf[KATAVM_ID_MAX + 2];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n > 0) {
      buf[n] = '\0';
      g_strchomp(buf);
      if (kv_id_validate(buf, NULL))
        inst = g_strdup(buf);
    }
  }
  kv_paths_init_dir(p, root, dir, inst ? inst : id);
}

void kv_paths_clear(KvPaths *p) {
  g_free(p->root);
  g_free(p->dir);
  g_free(p->run);
  g_free(p->shared);
  g_free(p->config);
  g_free(p->state);
  g_free(p->console);
  g_free(p->shim_log);
  g_free(p->shim_sock);
  g_free(p->agent_sock);
  g_free(p->vmm_root);
  g_free(p->caps_cache);
  g_free(p->domain);
  g_free(p->instance);
  memset(p, 0, sizeof(*p));
}

JsonObject *kv_json_file_load(const char *path, GError **error) {
  g_autofree char *data = NULL;
  gsize len = 0;
  struct stat st;
  if (stat(path, &st) == 0 && st.st_size > KV_JSON_FILE_MAX) {
    g_set_error(error, KV_ERROR, KATAVM_E_CORRUPT, "%s is too large (%lld bytes)", path,
                (long long)st.st_size);
    return NULL;
  }
  if (!g_file_get_contents(path, &data, &len, error))
    return NULL;
  g_autoptr(GError) perr = NULL;
  if (!kv_json_check_text(data, len, &perr)) {
    g_set_error(error, KV_ERROR, KATAVM_E_CORRUPT, "%s is not valid JSON: %s", path, perr->message);
    return NULL;
  }
  g_autoptr(JsonParser) parser = json_parser_new();
  if (!json_parser_load_from_data(parser, data, (gssize)len, &perr)) {
    g_set_error(error, KV_ERROR, KATAVM_E_CORRUPT, "%s is not valid JSON: %s", path, perr->message);
    return NULL;
  }
  JsonNode *root = json_parser_get_root(parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
    g_set_error(error, KV_ERROR, KATAVM_E_CORRUPT, "%s does not hold a JSON object", path);
    return NULL;
  }
  return json_object_ref(json_node_get_object(root));
}

char *kv_json_to_string(JsonObject *obj) {
  g_autoptr(JsonNode) node = json_node_new(JSON_NODE_OBJECT);
  json_node_set_object(node, obj);
  return json_to_string(node, FALSE);
}

JsonArray *kv_json_strv(const char *const *v) {
  JsonArray *a = json_array_new();
  for (; v && *v; v++)
    json_array_add_string_element(a, *v);
  return a;
}

gboolean kv_json_file_save(JsonObject *obj, const char *path, GError **error) {
  g_autofree char *s = kv_json_to_string(obj);
  /* g_file_set_contents writes a temp file and renames: readers never see a
   * half-written state file. */
  return g_file_set_contents_full(path, s, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600, error);
}

/* Below `path` the guest may have written (the share): each mount point is
 * opened from an fd of `path` without following any link
 * (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), must be the very mount
 * mountinfo names (same mount id), and is unmounted through /proc/self/fd,
 * never by a path a symlink could redirect (lib/shim/fs.c does the same in
 * the shim). */
void kv_umount_below(const char *path) {
  g_autofree char *data = NULL;
  if (!g_file_get_contents("/proc/self/mountinfo", &data, NULL, NULL))
    return;
  size_t plen = strlen(path);
  g_autoptr(GPtrArray) targets = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GArray) ids = g_array_new(FALSE, FALSE, sizeof(guint64));
  g_auto(GStrv) lines = g_strsplit(data, "\n", -1);
  for (char **l = lines; *l; l++) {
    g_auto(GStrv) f = g_strsplit(*l, " ", 6);
    if (g_strv_length(f) < 5)
      continue;
    /* mountinfo escapes spaces as \040; our paths have none. */
    const char *mp = f[4];
    if (strncmp(mp, path, plen) == 0 && (mp[plen] == '\0' || mp[plen] == '/')) {
      guint64 id = g_ascii_strtoull(f[0], NULL, 10);
      g_ptr_array_add(targets, g_strdup(mp));
      g_array_append_val(ids, id);
    }
  }
  int root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  /* Deepest (latest) first. */
  for (guint i = targets->len; root >= 0 && i > 0; i--) {
    const char *mp = g_ptr_array_index(targets, i - 1);
    const char *rel = mp[plen] == '/' ? mp + plen + 1 : ".";
    struct open_how how = {.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
                           .resolve =
                               RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    int fd = !strcmp(rel, ".") ? -1 : (int)syscall(SYS_openat2, root, rel, &how, sizeof how);
    if (!strcmp(rel, ".")) {
      umount2(path, MNT_DETACH); /* path itself: the caller's, not the guest's */
      continue;
    }
    struct statx sx;
    if (fd >= 0 && statx(fd, "", AT_EMPTY_PATH, 0x1000 /* STATX_MNT_ID */, &sx) == 0 &&
        (sx.stx_mask & 0x1000) && sx.stx_mnt_id == g_array_index(ids, guint64, i - 1)) {
      char link[64];
      snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
      umount2(link, MNT_DETACH);
    }
    if (fd >= 0)
      close(fd);
  }
  if (root >= 0)
    close(root);
}

static gboolean rm_tree(int parent, const char *name, dev_t dev, GError **error) {
  struct stat st;
  if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return errno == ENOENT ? TRUE
                           : (g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                                          "stat %s: %s", name, g_strerror(errno)),
                              FALSE);
  if (!S_ISDIR(st.st_mode)) {
    if (unlinkat(parent, name, 0) < 0 && errno != ENOENT) {
      g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "unlink %s: %s", name,
                  g_strerror(errno));
      return FALSE;
    }
    return TRUE;
  }
  if (st.st_dev != dev) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_BUSY,
                "%s is still a mount point; refusing to remove below it", name);
    return FALSE;
  }
  int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "open %s: %s", name,
                g_strerror(errno));
    return FALSE;
  }
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return FALSE;
  }
  gboolean ok = TRUE;
  struct dirent *de;
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  while ((de = readdir(d)))
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
      g_ptr_array_add(names, g_strdup(de->d_name));
  for (guint i = 0; ok && i < names->len; i++)
    ok = rm_tree(dirfd(d), g_ptr_array_index(names, i), dev, error);
  closedir(d);
  if (ok && unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "rmdir %s: %s", name,
                g_strerror(errno));
    ok = FALSE;
  }
  return ok;
}

gboolean kv_rm_rf(const char *path, GError **error) {
  struct stat st;
  if (lstat(path, &st) < 0)
    return errno == ENOENT ? TRUE : FALSE;
  kv_umount_below(path);
  if (lstat(path, &st) < 0)
    return TRUE;
  return rm_tree(AT_FDCWD, path, st.st_dev, error);
}

char *kv_guest_cmdline(void) {
  /* Measured (docs/platform.md, "Boot"): these options take the Debian kernel under TCG
   * from ~8.7 s to ~3.6 s. tsc_early_khz skips TSC calibration.
   * pcie_ports=compat: the PCIe port services (pciehp, AER, PME) stay off
   * the spare root ports. Setting up native hotplug on each of them cost
   * ~0.1 s of every boot (bench/boot: 2.06 -> 1.95 s with 10 ports), and
   * it is not what hot-adds NICs and disks here: QEMU's q35 (>= 6.1) hands
   * root-port hotplug to ACPI, which the built-in acpiphp serves.
   * loglevel=1, not 0: panic() raises the console's level only when it is
   * not 0, so with 0 a panic left no line on the console for the shim's
   * stop reason; 1 still prints nothing below KERN_EMERG while booting. */
  GString *s = g_string_new(
      "console=ttyS0 panic=-1 quiet loglevel=1 cryptomgr.notests tsc=reliable "
      "no_timer_check i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd "
      "random.trust_cpu=on mitigations=off swiotlb=noforce "
      "initcall_blacklist=init_kprobe_trace,crypto_kdf108_init "
      "memhp_default_state=online memory_hotplug.online_policy=auto-movable pcie_ports=compat");
  g_autofree char *cpuinfo = NULL;
  if (g_file_get_contents("/proc/cpuinfo", &cpuinfo, NULL, NULL)) {
    const char *m = strstr(cpuinfo, "cpu MHz");
    const char *colon = m ? strchr(m, ':') : NULL;
    if (colon) {
      double mhz = g_ascii_strtod(colon + 1, NULL);
      if (mhz > 100 && mhz < 100000)
        g_string_append_printf(s, " tsc_early_khz=%u", (unsigned)(mhz * 1000));
    }
  }
  /* KATAVM_GUEST_DEBUG=1 makes the kernel and agent talk on the console
   * (the sandbox's console.log). */
  const char *dbg = g_getenv("KATAVM_GUEST_DEBUG");
  if (dbg && *dbg && strcmp(dbg, "0") != 0)
    g_string_append(s, " KATAVM_DEBUG=1 loglevel=7");
  return g_string_free(s, FALSE);
}

char kv_proc_state(int pid) {
  if (pid <= 0)
    return 0;
  g_autofree char *path = g_strdup_printf("/proc/%d/stat", pid);
  g_autofree char *st = NULL;
  if (!g_file_get_contents(path, &st, NULL, NULL))
    return 0;
  /* "PID (COMM) STATE ...": COMM may hold anything, the last ')' ends it. */
  const char *rp = strrchr(st, ')');
  return rp && rp[1] == ' ' && rp[2] ? rp[2] : 0;
}

int kv_proc_session(int pid) {
  if (pid <= 0)
    return 0;
  g_autofree char *path = g_strdup_printf("/proc/%d/stat", pid);
  g_autofree char *st = NULL;
  if (!g_file_get_contents(path, &st, NULL, NULL))
    return 0;
  /* "PID (COMM) STATE PPID PGRP SESSION ...", also for a zombie. */
  const char *rp = strrchr(st, ')');
  char state;
  int ppid, pgrp, sid;
  if (!rp || sscanf(rp + 1, " %c %d %d %d", &state, &ppid, &pgrp, &sid) != 4)
    return 0;
  return sid;
}

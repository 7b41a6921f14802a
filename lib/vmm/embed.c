/* lib/vmm/embed.c: preparing a root for libvirt's embedded QEMU driver
 * (qemu:///embed?root=ROOT), which runs QEMU from our own process without
 * libvirtd.
 *
 * Owns the root's qemu.conf and the link to the shared QEMU capabilities
 * cache. A fresh root otherwise probes QEMU on first open, which takes about
 * as long as a whole VM boot; with one root per sandbox that probe would
 * double every start. */
#include "vmm.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The longest unix socket libvirt creates under the root is the QEMU
 * monitor: ROOT/lib/qemu/domain-<id>-<first 20 chars of name>/monitor.sock,
 * with <id> an int (up to 10 digits). sun_path holds 107 bytes + NUL. */
#define KV_UNIX_PATH_MAX 107
#define KV_EMBED_SOCKET_SUFFIX_MAX                                                                 \
  (sizeof("/lib/qemu/domain-") - 1 + 10 + 1 + 20 + sizeof("/monitor.sock") - 1)
#define KV_EMBED_ROOT_MAX (KV_UNIX_PATH_MAX - KV_EMBED_SOCKET_SUFFIX_MAX)

/* user/group "+0": QEMU runs as root, like the runtime itself, so it can
 * read kernels, initrds and shared dirs that belong to root.
 * remember_owner = 0: otherwise libvirt records owners in XATTRs on kernel
 * and initrd, and a second VM using the same files fails on stale ones.
 * security_driver = "none": no SELinux/AppArmor relabelling of shared
 * images (isolation comes from the VM boundary); security_default_confined
 * = 0 says the same for the default policy, and keeps libvirt from
 * printing a warning about it to stderr on every open.
 * namespaces: [ "mount" ] (libvirt's default, written out so that it is
 * not lost to a changed default) gives QEMU a private mount namespace with
 * a /dev of its own holding only its devices; it is all libvirt's QEMU
 * driver offers. [ ] (mount_ns FALSE) is for a QEMU that serves a
 * passthrough 9p share itself: bind mounts added under the share after
 * boot would otherwise stay invisible to it. The shim never asks for that
 * any more (its 9p goes through virtfs-proxy-helper, lib/shim/vfsd.c).
 * seccomp_sandbox = 1: QEMU's own seccomp filter (-sandbox on, with
 * obsolete, elevateprivileges, spawn and resourcecontrol denied), asked
 * for outright rather than left to "if QEMU has it" (-1, the default).
 * stdio_handler = "file": QEMU's stderr goes to ROOT/log/qemu/NAME.log
 * directly; there is no virtlogd next to an embedded driver.
 * cgroup_controllers = []: libvirt's per-VM cgroup setup cost about 0.25 s
 * of every start here (cgroup v1 hybrid host); the runtime sets no
 * libvirt-level CPU/memory limits on the VM (the guest enforces the
 * containers' own limits with cgroup v2). */
static const char qemu_conf[] =
    "# Written by libkatavm (lib/vmm/embed.c); rewritten on every prepare.\n"
    "user = \"+0\"\n"
    "group = \"+0\"\n"
    "remember_owner = 0\n"
    "security_driver = \"none\"\n"
    "security_default_confined = 0\n"
    "seccomp_sandbox = 1\n"
    "%s"
    "stdio_handler = \"file\"\n"
    "cgroup_controllers = [ ]\n";

static gboolean mkdir_p(const char *path, GError **error) {
  if (g_mkdir_with_parents(path, 0700) < 0) {
    int e = errno;
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID, "cannot create directory '%s': %s", path,
                g_strerror(e));
    return FALSE;
  }
  return TRUE;
}

/* Make `link` a symlink to `target`. An existing correct link is kept; a
 * link elsewhere is replaced (atomically, via rename, so a concurrent open
 * sees either the old or the new one). A real directory is left alone: it
 * is this root's own, already warm cache. */
static gboolean link_cache(const char *link, const char *target, GError **error) {
  struct stat st;

  if (lstat(link, &st) == 0) {
    if (S_ISDIR(st.st_mode))
      return TRUE;
    if (S_ISLNK(st.st_mode)) {
      g_autofree char *cur = g_file_read_link(link, NULL);
      if (cur && g_str_equal(cur, target))
        return TRUE;
    }
  }

  g_autofree char *tmp = g_strdup_printf("%s.tmp.%d", link, (int)getpid());
  (void)unlink(tmp);
  if (symlink(target, tmp) < 0 || rename(tmp, link) < 0) {
    int e = errno;
    (void)unlink(tmp);
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "cannot link capabilities cache '%s' -> '%s': %s", link, target, g_strerror(e));
    return FALSE;
  }
  return TRUE;
}

/* libvirt (9.0 here) reads the vCPU's features back from every new QEMU
 * before starting it. With the capability flag "cpu-unavailable-features"
 * it takes its generic path: qom-list of the CPU object, then one QMP
 * qom-get per property, about 400 monitor round trips that cost ~0.5 s of
 * each ~2 s start under TCG (bench/boot: 2.50 s -> 2.01 s median). Without
 * the flag it takes its x86 path, which reads the same enabled/disabled
 * feature sets from two properties ("feature-words", "filtered-features")
 * that every x86 QEMU has. (QEMU 10.1 added qom-list-get for this very
 * cost.) The flag only selects between those two readers, so it is dropped
 * from the capabilities cache we own. libvirt loads a valid cache file as
 * it is and rewrites it only when QEMU or libvirt change, after which the
 * next prepare drops the flag again. */
#define KV_SLOW_CPU_FETCH_FLAG "<flag name='cpu-unavailable-features'/>"

/* Drop the flag from one cache file; rename makes the rewrite atomic for a
 * concurrent reader. Errors only cost speed, so they are ignored. */
static void trim_caps_file(const char *path) {
  g_autofree char *text = NULL;
  gsize len = 0;
  if (!g_file_get_contents(path, &text, &len, NULL))
    return;
  char *flag = strstr(text, KV_SLOW_CPU_FETCH_FLAG);
  if (flag == NULL)
    return;
  /* The whole line when the flag stands alone on it, as libvirt writes it. */
  char *start = flag;
  while (start > text && (start[-1] == ' ' || start[-1] == '\t'))
    start--;
  char *end = flag + strlen(KV_SLOW_CPU_FETCH_FLAG);
  if ((start == text || start[-1] == '\n') && *end == '\n')
    end++;
  else
    start = flag;
  memmove(start, end, len - (gsize)(end - text) + 1);
  g_autofree char *tmp = g_strdup_printf("%s.katavm.%d", path, (int)getpid());
  if (!g_file_set_contents(tmp, text, -1, NULL) || rename(tmp, path) < 0)
    (void)unlink(tmp);
}

static void trim_caps_cache(const char *qemu_cache) {
  g_autofree char *dir = g_build_filename(qemu_cache, "capabilities", NULL);
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  if (d == NULL)
    return;
  const char *name;
  while ((name = g_dir_read_name(d)) != NULL) {
    if (!g_str_has_suffix(name, ".xml"))
      continue;
    g_autofree char *path = g_build_filename(dir, name, NULL);
    trim_caps_file(path);
  }
}

char *kv_vmm_embed_prepare(const char *root, const char *caps_cache, GError **error) {
  return kv_vmm_embed_prepare_ns(root, caps_cache, FALSE, error);
}

char *kv_vmm_embed_prepare_ns(const char *root, const char *caps_cache, gboolean mount_ns,
                              GError **error) {
  if (!root || !g_path_is_absolute(root)) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "embed root '%s' is not an absolute path", root ? root : "(null)");
    return NULL;
  }
  if (caps_cache && !g_path_is_absolute(caps_cache)) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "capabilities cache '%s' is not an absolute path", caps_cache);
    return NULL;
  }

  /* Trailing slashes would double up in libvirt's paths; drop them so the
   * length check below measures what libvirt will build. */
  g_autofree char *clean = g_strdup(root);
  for (gsize n = strlen(clean); n > 1 && clean[n - 1] == '/'; n--)
    clean[n - 1] = '\0';

  if (strlen(clean) > KV_EMBED_ROOT_MAX) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID,
                "embed root '%s' is %zu bytes; libvirt's monitor socket under "
                "it (ROOT/lib/qemu/domain-ID-NAME/monitor.sock) would exceed "
                "the %d-byte unix socket path limit: use a root of at most "
                "%zu bytes",
                clean, strlen(clean), KV_UNIX_PATH_MAX, (gsize)KV_EMBED_ROOT_MAX);
    return NULL;
  }

  g_autofree char *etc = g_build_filename(clean, "etc", NULL);
  g_autofree char *cache = g_build_filename(clean, "cache", NULL);
  if (!mkdir_p(etc, error) || !mkdir_p(cache, error))
    return NULL;

  g_autofree char *conf = g_build_filename(etc, "qemu.conf", NULL);
  g_autoptr(GError) local = NULL;
  g_autofree char *text =
      g_strdup_printf(qemu_conf, mount_ns ? "namespaces = [ \"mount\" ]\n" : "namespaces = [ ]\n");
  if (!g_file_set_contents(conf, text, -1, &local)) {
    g_set_error(error, KV_VMM_ERROR, KV_VMM_ERROR_INVALID, "cannot write '%s': %s", conf,
                local->message);
    return NULL;
  }

  g_autofree char *link = g_build_filename(cache, "qemu", NULL);
  if (caps_cache && (!mkdir_p(caps_cache, error) || !link_cache(link, caps_cache, error)))
    return NULL;
  trim_caps_cache(link);

  /* libvirt parses the query like any URI: escape what a path may hold. */
  g_autofree char *escaped = g_uri_escape_string(clean, "/", FALSE);
  return g_strdup_printf("qemu:///embed?root=%s", escaped);
}

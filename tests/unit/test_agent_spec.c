/* tests/unit/test_agent_spec.c: the OCI spec parser the agent acts on
 * (lib/proto/ocispec.c) and the agent's seccomp compiler (agent/seccomp.c):
 * every field the agent honours, and malformed input refused with the
 * field named. No VM, no root. */
#include <check.h>
#include <linux/capability.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>

#include "ocispec.h"
#include "seccomp-profile.h"

static JsonObject *parse(const char *json) {
  g_autoptr(GError) e = NULL;
  g_autoptr(JsonParser) p = json_parser_new();
  ck_assert_msg(json_parser_load_from_data(p, json, -1, &e), "%s: %s", json, e ? e->message : "");
  JsonNode *root = json_parser_get_root(p);
  ck_assert(JSON_NODE_HOLDS_OBJECT(root));
  return json_object_ref(json_node_get_object(root));
}

/* A spec: process fields, then the rest of the top level. */
static char *spec_json(const char *process_extra, const char *top_extra) {
  return g_strdup_printf("{\"process\":{\"args\":[\"sh\",\"-c\",\"true\"]%s%s}%s%s}",
                         process_extra && *process_extra ? "," : "",
                         process_extra ? process_extra : "", top_extra && *top_extra ? "," : "",
                         top_extra ? top_extra : "");
}

static KvOciSpec *spec_ok(const char *process_extra, const char *top_extra) {
  g_autofree char *json = spec_json(process_extra, top_extra);
  g_autoptr(JsonObject) o = parse(json);
  g_autoptr(GError) e = NULL;
  KvOciSpec *s = kv_ocispec_parse(o, &e);
  ck_assert_msg(s != NULL, "%s: %s", json, e ? e->message : "");
  return s;
}

/* Parses and expects a failure with `code` whose message contains
 * `needle`. */
static void spec_bad_json(const char *json, int code, const char *needle) {
  g_autoptr(JsonObject) o = parse(json);
  g_autoptr(GError) e = NULL;
  KvOciSpec *s = kv_ocispec_parse(o, &e);
  ck_assert_msg(s == NULL, "%s: accepted", json);
  ck_assert(e->domain == KV_ERROR_DOMAIN);
  ck_assert_msg(e->code == code, "%s: code %d, want %d (%s)", json, e->code, code, e->message);
  ck_assert_msg(strstr(e->message, needle) != NULL, "%s: \"%s\" lacks \"%s\"", json, e->message,
                needle);
}

static void spec_bad(const char *process_extra, const char *top_extra, int code,
                     const char *needle) {
  g_autofree char *json = spec_json(process_extra, top_extra);
  spec_bad_json(json, code, needle);
}

/* ---- process ---- */

START_TEST(test_process_defaults) {
  g_autoptr(KvOciSpec) s = spec_ok(NULL, NULL);
  KvOciProcess *p = s->process;
  ck_assert_str_eq(p->args[0], "sh");
  ck_assert_str_eq(p->args[2], "true");
  ck_assert_ptr_null(p->args[3]);
  ck_assert_ptr_nonnull(p->env);
  ck_assert_ptr_null(p->env[0]);
  ck_assert_str_eq(p->cwd, "/");
  ck_assert_int_eq(p->uid, 0);
  ck_assert_int_eq(p->gid, 0);
  ck_assert_uint_eq(p->groups->len, 0);
  ck_assert(!p->terminal);
  ck_assert_int_eq(p->rows, 0);
  ck_assert(!p->has_caps);
  ck_assert(!p->no_new_privileges);
  ck_assert_uint_eq(p->rlimits->len, 0);
  ck_assert(!p->has_oom_score_adj);
  /* The top level's defaults. */
  ck_assert(!s->root_readonly);
  ck_assert_ptr_null(s->hostname);
  ck_assert_int_eq(s->namespaces, CLONE_NEWNS);
  ck_assert_uint_eq(s->mounts->len, 0);
  ck_assert_uint_eq(s->devices->len, 0);
  ck_assert_ptr_null(s->masked_paths);
  ck_assert_ptr_null(s->sysctl);
  ck_assert_int_eq(s->resources.memory_limit, -1);
  ck_assert_int_eq(s->resources.pids_limit, -1);
  ck_assert_ptr_null(s->seccomp);
}
END_TEST

START_TEST(test_process_fields) {
  g_autoptr(KvOciSpec) s =
      spec_ok("\"env\":[\"PATH=/bin\",\"A=b=c\"],\"cwd\":\"/work\",\"terminal\":true,"
              "\"consoleSize\":{\"height\":40,\"width\":120},"
              "\"user\":{\"uid\":1000,\"gid\":100,\"additionalGids\":[10,20]},"
              "\"capabilities\":{\"bounding\":[\"CAP_KILL\",\"net_raw\"],\"effective\":[\"CAP_"
              "CHOWN\"],\"permitted\":[\"CAP_CHOWN\"],\"inheritable\":[],\"ambient\":[\"CAP_"
              "BPF\"]},"
              "\"noNewPrivileges\":true,\"oomScoreAdj\":-500,"
              "\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":1024,\"hard\":4096},"
              "{\"type\":\"RLIMIT_CORE\",\"soft\":18446744073709551615,\"hard\":"
              "18446744073709551615}]",
              NULL);
  KvOciProcess *p = s->process;
  ck_assert_str_eq(p->env[0], "PATH=/bin");
  ck_assert_str_eq(kv_ocispec_env_get(p->env, "A"), "b=c");
  ck_assert_ptr_null(kv_ocispec_env_get(p->env, "HOME"));
  ck_assert_str_eq(p->cwd, "/work");
  ck_assert(p->terminal);
  ck_assert_int_eq(p->rows, 40);
  ck_assert_int_eq(p->cols, 120);
  ck_assert_int_eq(p->uid, 1000);
  ck_assert_int_eq(p->gid, 100);
  ck_assert_uint_eq(p->groups->len, 2);
  ck_assert_int_eq(g_array_index(p->groups, gid_t, 1), 20);
  ck_assert(p->has_caps);
  ck_assert(p->caps[KV_OCI_CAPS_BOUNDING] ==
            ((G_GUINT64_CONSTANT(1) << CAP_KILL) | (G_GUINT64_CONSTANT(1) << CAP_NET_RAW)));
  ck_assert(p->caps[KV_OCI_CAPS_EFFECTIVE] == G_GUINT64_CONSTANT(1) << CAP_CHOWN);
  ck_assert(p->caps[KV_OCI_CAPS_PERMITTED] == G_GUINT64_CONSTANT(1) << CAP_CHOWN);
  ck_assert(p->caps[KV_OCI_CAPS_INHERITABLE] == 0);
  ck_assert(p->caps[KV_OCI_CAPS_AMBIENT] == G_GUINT64_CONSTANT(1) << CAP_BPF);
  ck_assert(p->no_new_privileges);
  ck_assert(p->has_oom_score_adj);
  ck_assert_int_eq(p->oom_score_adj, -500);
  ck_assert_uint_eq(p->rlimits->len, 2);
  KvOciRlimit *r0 = &g_array_index(p->rlimits, KvOciRlimit, 0);
  ck_assert_int_eq(r0->resource, RLIMIT_NOFILE);
  ck_assert_uint_eq(r0->limit.rlim_cur, 1024);
  ck_assert_uint_eq(r0->limit.rlim_max, 4096);
  KvOciRlimit *r1 = &g_array_index(p->rlimits, KvOciRlimit, 1);
  ck_assert_int_eq(r1->resource, RLIMIT_CORE);
  ck_assert(r1->limit.rlim_cur == RLIM_INFINITY);
  ck_assert(r1->limit.rlim_max == RLIM_INFINITY);
}
END_TEST

START_TEST(test_process_malformed) {
  spec_bad_json("{}", KV_E_INVALID, "spec: process is required");
  spec_bad_json("{\"process\":[]}", KV_E_INVALID, "spec.process must be an object");
  spec_bad_json("{\"process\":{}}", KV_E_INVALID, "spec: process.args must be a non-empty array");
  spec_bad_json("{\"process\":{\"args\":[]}}", KV_E_INVALID, "process.args");
  spec_bad_json("{\"process\":{\"args\":[\"\"]}}", KV_E_INVALID, "process.args");
  spec_bad_json("{\"process\":{\"args\":\"sh\"}}", KV_E_INVALID, "process.args must be an array");
  spec_bad_json("{\"process\":{\"args\":[\"sh\",3]}}", KV_E_INVALID,
                "process.args[1] must be a string");
  spec_bad("\"env\":[\"NOEQUALS\"]", NULL, KV_E_INVALID, "process.env: \"NOEQUALS\"");
  spec_bad("\"env\":[\"=x\"]", NULL, KV_E_INVALID, "process.env");
  spec_bad("\"env\":{}", NULL, KV_E_INVALID, "process.env must be an array");
  spec_bad("\"cwd\":\"rel\"", NULL, KV_E_INVALID, "process.cwd must be an absolute path");
  spec_bad("\"cwd\":7", NULL, KV_E_INVALID, "process.cwd must be a string");
  spec_bad("\"terminal\":\"yes\"", NULL, KV_E_INVALID, "process.terminal must be a boolean");
  spec_bad("\"consoleSize\":{\"height\":70000}", NULL, KV_E_INVALID,
           "process.consoleSize.height must be an integer");
  spec_bad("\"consoleSize\":3", NULL, KV_E_INVALID, "process.consoleSize must be an object");
  spec_bad("\"user\":{\"uid\":-1}", NULL, KV_E_INVALID, "process.user.uid");
  spec_bad("\"user\":{\"gid\":\"root\"}", NULL, KV_E_INVALID, "process.user.gid");
  spec_bad("\"user\":{\"uid\":0,\"additionalGids\":[\"x\"]}", NULL, KV_E_INVALID,
           "process.user.additionalGids[0] must be a gid");
  spec_bad("\"user\":{\"username\":\"bob\"}", NULL, KV_E_INVALID, "process.user.username");
  spec_bad("\"capabilities\":{\"bounding\":[\"CAP_FLY\"]}", NULL, KV_E_INVALID,
           "process.capabilities.bounding: unknown capability \"CAP_FLY\"");
  spec_bad("\"capabilities\":{\"ambient\":\"CAP_KILL\"}", NULL, KV_E_INVALID,
           "process.capabilities.ambient must be an array");
  spec_bad("\"noNewPrivileges\":1", NULL, KV_E_INVALID,
           "process.noNewPrivileges must be a boolean");
  spec_bad("\"oomScoreAdj\":1001", NULL, KV_E_INVALID, "process.oomScoreAdj must be an integer");
  spec_bad("\"rlimits\":[{\"type\":\"RLIMIT_FOO\",\"soft\":1,\"hard\":1}]", NULL, KV_E_INVALID,
           "process.rlimits[0].type: unknown rlimit \"RLIMIT_FOO\"");
  spec_bad("\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":10,\"hard\":5}]", NULL, KV_E_INVALID,
           "soft limit 10 is above the hard limit 5");
  spec_bad("\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":1}]", NULL, KV_E_INVALID,
           "process.rlimits[0].hard is required");
  spec_bad("\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":\"1\",\"hard\":1}]", NULL,
           KV_E_INVALID, "process.rlimits[0].soft must be an integer");
  /* json-glib reads 18446744073709551615 as -1: both are RLIM_INFINITY. */
  spec_bad("\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":-1,\"hard\":1}]", NULL, KV_E_INVALID,
           "soft limit 18446744073709551615 is above the hard limit 1");
}
END_TEST

/* An exec's process takes what it leaves out from the container's. */
START_TEST(test_exec_process_defaults) {
  g_autoptr(KvOciSpec) s =
      spec_ok("\"env\":[\"A=1\"],\"cwd\":\"/srv\",\"user\":{\"uid\":7,\"gid\":8},"
              "\"noNewPrivileges\":true,\"oomScoreAdj\":100,"
              "\"rlimits\":[{\"type\":\"RLIMIT_NPROC\",\"soft\":5,\"hard\":5}]",
              NULL);
  g_autoptr(JsonObject) o = parse("{\"args\":[\"ls\"],\"terminal\":true}");
  g_autoptr(GError) e = NULL;
  g_autoptr(KvOciProcess) p = kv_ocispec_process_parse(o, s->process, "exec: process", &e);
  ck_assert_msg(p != NULL, "%s", e ? e->message : "");
  ck_assert_str_eq(p->args[0], "ls");
  ck_assert_str_eq(p->env[0], "A=1");
  ck_assert_str_eq(p->cwd, "/srv");
  ck_assert_int_eq(p->uid, 7);
  ck_assert_int_eq(p->gid, 8);
  ck_assert(p->terminal);
  ck_assert(p->no_new_privileges);
  ck_assert_int_eq(p->oom_score_adj, 100);
  ck_assert_uint_eq(p->rlimits->len, 1);

  g_autoptr(JsonObject) o2 = parse("{\"args\":[\"ls\"],\"env\":[\"B=2\"],\"cwd\":\"/\"}");
  g_autoptr(KvOciProcess) p2 = kv_ocispec_process_parse(o2, s->process, "exec: process", &e);
  ck_assert_ptr_nonnull(p2);
  ck_assert_str_eq(p2->env[0], "B=2");
  ck_assert_ptr_null(p2->env[1]);
  ck_assert_str_eq(p2->cwd, "/");

  g_autoptr(JsonObject) bad = parse("{\"args\":[]}");
  ck_assert_ptr_null(kv_ocispec_process_parse(bad, s->process, "exec: process", &e));
  ck_assert_msg(strstr(e->message, "exec: process.args") != NULL, "%s", e->message);
}
END_TEST

/* ---- root, hostname, mounts ---- */

START_TEST(test_root_hostname) {
  g_autoptr(KvOciSpec) s =
      spec_ok(NULL, "\"root\":{\"path\":\"rootfs\",\"readonly\":true},\"hostname\":\"web\","
                    "\"linux\":{\"namespaces\":[{\"type\":\"uts\"}]}");
  ck_assert(s->root_readonly);
  ck_assert_str_eq(s->hostname, "web");
  spec_bad(NULL, "\"hostname\":\"web\"", KV_E_INVALID, "hostname needs a new UTS namespace");
  spec_bad(NULL, "\"root\":{\"readonly\":\"no\"}", KV_E_INVALID,
           "spec: root.readonly must be a boolean");
  spec_bad(NULL, "\"hostname\":5", KV_E_INVALID, "spec.hostname must be a string");
  g_autofree char *longname = g_strnfill(65, 'h');
  g_autofree char *top = g_strdup_printf(
      "\"hostname\":\"%s\",\"linux\":{\"namespaces\":[{\"type\":\"uts\"}]}", longname);
  spec_bad(NULL, top, KV_E_INVALID, "hostname is longer than 64 bytes");
}
END_TEST

/* The writable layer's bound travels as an annotation, so that a bundle
 * (katavm-runtime, the containerd shim) can ask for it as well. */
START_TEST(test_storage_size_annotation) {
  g_autoptr(KvOciSpec) none = spec_ok(NULL, "\"annotations\":{\"other\":\"x\"}");
  ck_assert_uint_eq(none->storage_size_mib, 0);
  g_autoptr(KvOciSpec) s = spec_ok(NULL, "\"annotations\":{\"io.katavm.storage_size_mib\":\"64\"}");
  ck_assert_uint_eq(s->storage_size_mib, 64);
  spec_bad(NULL, "\"annotations\":{\"io.katavm.storage_size_mib\":\"0\"}", KV_E_INVALID,
           "annotations.io.katavm.storage_size_mib: '0' is not a size in MiB");
  spec_bad(NULL, "\"annotations\":{\"io.katavm.storage_size_mib\":\"1g\"}", KV_E_INVALID,
           "'1g' is not a size in MiB in 1..1048576");
  spec_bad(NULL, "\"annotations\":{\"io.katavm.storage_size_mib\":64}", KV_E_INVALID,
           "io.katavm.storage_size_mib must be a string");
  spec_bad(NULL,
           "\"root\":{\"readonly\":true},"
           "\"annotations\":{\"io.katavm.storage_size_mib\":\"8\"}",
           KV_E_INVALID, "a read-only root");
}
END_TEST

START_TEST(test_mounts) {
  g_autoptr(KvOciSpec) s =
      spec_ok(NULL, "\"mounts\":["
                    "{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
                    "{\"destination\":\"/tmp\",\"type\":\"tmpfs\",\"source\":\"tmpfs\","
                    "\"options\":[\"nosuid\",\"nodev\",\"noexec\",\"mode=1777\",\"size=65536k\"]},"
                    "{\"destination\":\"/data\",\"source\":\"/run/vol\","
                    "\"options\":[\"rbind\",\"ro\",\"rslave\"]},"
                    "{\"destination\":\"/rw\",\"type\":\"bind\",\"source\":\"vol\","
                    "\"options\":[\"ro\",\"rw\",\"bind\",\"tmpcopyup\"]}]");
  ck_assert_uint_eq(s->mounts->len, 4);
  KvOciMount *m0 = s->mounts->pdata[0];
  ck_assert_str_eq(m0->destination, "/proc");
  ck_assert_str_eq(m0->type, "proc");
  ck_assert(!m0->bind);
  KvOciMount *m1 = s->mounts->pdata[1];
  ck_assert(m1->flags == (MS_NOSUID | MS_NODEV | MS_NOEXEC));
  ck_assert_str_eq(m1->data, "mode=1777,size=65536k");
  KvOciMount *m2 = s->mounts->pdata[2];
  ck_assert_str_eq(m2->type, "bind");
  ck_assert(m2->bind && m2->recursive);
  ck_assert(m2->flags == MS_RDONLY);
  ck_assert(m2->propagation == (MS_SLAVE | MS_REC));
  ck_assert_str_eq(m2->source, "/run/vol");
  KvOciMount *m3 = s->mounts->pdata[3];
  ck_assert(m3->bind && !m3->recursive);
  ck_assert(m3->flags == 0); /* rw clears ro */
  ck_assert_ptr_null(m3->data);

  spec_bad(NULL, "\"mounts\":{}", KV_E_INVALID, "spec.mounts must be an array");
  spec_bad(NULL, "\"mounts\":[3]", KV_E_INVALID, "spec: mounts[0] must be an object");
  spec_bad(NULL, "\"mounts\":[{\"type\":\"tmpfs\"}]", KV_E_INVALID,
           "spec: mounts[0].destination is required");
  spec_bad(NULL, "\"mounts\":[{\"destination\":\"tmp\",\"type\":\"tmpfs\"}]", KV_E_INVALID,
           "spec: mounts[0].destination must be an absolute path");
  spec_bad(NULL, "\"mounts\":[{\"destination\":\"/a/../etc\",\"type\":\"tmpfs\"}]", KV_E_INVALID,
           "must not contain");
  spec_bad(NULL, "\"mounts\":[{\"destination\":\"/a\",\"type\":\"bind\"}]", KV_E_INVALID,
           "spec: mounts[0].source is required for a bind mount");
  spec_bad(NULL, "\"mounts\":[{\"destination\":\"/a\",\"type\":\"nfs\",\"source\":\"x\"}]",
           KV_E_UNSUPPORTED, "spec: mounts[0].type \"nfs\" is not supported");
  spec_bad(NULL, "\"mounts\":[{\"destination\":\"/a\",\"type\":\"tmpfs\",\"options\":[\"a,b\"]}]",
           KV_E_INVALID, "spec: mounts[0].options: \"a,b\" contains a comma");
  spec_bad(NULL, "\"mounts\":[{\"destination\":\"/a\",\"type\":\"tmpfs\",\"options\":[1]}]",
           KV_E_INVALID, "spec: mounts[0].options[0] must be a string");
}
END_TEST

/* ---- linux ---- */

START_TEST(test_namespaces) {
  g_autoptr(KvOciSpec) s = spec_ok(
      NULL, "\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"ipc\"},{\"type\":\"uts\"},"
            "{\"type\":\"mount\"},{\"type\":\"cgroup\"},{\"type\":\"network\",\"path\":\"/x\"}]}");
  ck_assert_int_eq(s->namespaces,
                   CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP);
  spec_bad(NULL, "\"linux\":{\"namespaces\":[{\"type\":\"user\"}]}", KV_E_UNSUPPORTED,
           "spec: linux.namespaces[0]: user namespaces are not supported");
  spec_bad(NULL, "\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"time\"}]}",
           KV_E_UNSUPPORTED, "linux.namespaces[1]: time namespaces");
  spec_bad(NULL, "\"linux\":{\"namespaces\":[{\"type\":\"bogus\"}]}", KV_E_INVALID,
           "linux.namespaces[0].type: unknown namespace \"bogus\"");
  spec_bad(NULL, "\"linux\":{\"namespaces\":[{\"type\":\"pid\",\"path\":\"/proc/1/ns/pid\"}]}",
           KV_E_UNSUPPORTED, "joining a pid namespace by path");
  spec_bad(NULL, "\"linux\":{\"namespaces\":[{}]}", KV_E_INVALID,
           "spec: linux.namespaces[0].type is required");
  spec_bad(NULL, "\"linux\":{\"namespaces\":[\"pid\"]}", KV_E_INVALID,
           "linux.namespaces[0] must be an object");
  spec_bad(NULL, "\"linux\":[]", KV_E_INVALID, "spec.linux must be an object");
}
END_TEST

START_TEST(test_devices_paths_sysctl) {
  g_autoptr(KvOciSpec) s = spec_ok(
      NULL,
      "\"linux\":{\"devices\":[{\"path\":\"/dev/fuse\",\"type\":\"c\",\"major\":10,\"minor\":229,"
      "\"fileMode\":438,\"uid\":1,\"gid\":2},{\"path\":\"/dev/p\",\"type\":\"p\"},"
      "{\"path\":\"/dev/u\",\"type\":\"u\",\"major\":1,\"minor\":3}],"
      "\"maskedPaths\":[\"/proc/kcore\",\"/proc/keys\"],\"readonlyPaths\":[\"/proc/sys\"],"
      "\"sysctl\":{\"net.ipv4.ip_forward\":\"1\"},\"rootfsPropagation\":\"rshared\"}");
  ck_assert_uint_eq(s->devices->len, 3);
  KvOciDevice *d = s->devices->pdata[0];
  ck_assert_str_eq(d->path, "/dev/fuse");
  ck_assert_int_eq(d->type, 'c');
  ck_assert_uint_eq(d->major, 10);
  ck_assert_uint_eq(d->minor, 229);
  ck_assert_uint_eq(d->mode, 0666);
  ck_assert_int_eq(d->uid, 1);
  ck_assert_int_eq(d->gid, 2);
  ck_assert_int_eq(((KvOciDevice *)s->devices->pdata[1])->type, 'p');
  ck_assert_int_eq(((KvOciDevice *)s->devices->pdata[2])->type, 'c');
  ck_assert_str_eq(s->masked_paths[1], "/proc/keys");
  ck_assert_str_eq(s->readonly_paths[0], "/proc/sys");
  ck_assert_str_eq(s->sysctl[0], "net.ipv4.ip_forward");
  ck_assert_str_eq(s->sysctl[1], "1");
  ck_assert_ptr_null(s->sysctl[2]);
  ck_assert(s->rootfs_propagation == (MS_SHARED | MS_REC));

  spec_bad(NULL, "\"linux\":{\"devices\":[{\"path\":\"/dev/x\",\"type\":\"z\"}]}", KV_E_INVALID,
           "spec: linux.devices[0].type must be one of c, u, b, p");
  spec_bad(NULL, "\"linux\":{\"devices\":[{\"path\":\"/dev/x\",\"type\":\"c\"}]}", KV_E_INVALID,
           "spec: linux.devices[0].major is required");
  spec_bad(NULL,
           "\"linux\":{\"devices\":[{\"path\":\"/dev/x\",\"type\":\"b\",\"major\":1,\"minor\":"
           "1,\"fileMode\":99999}]}",
           KV_E_INVALID, "linux.devices[0].fileMode must be an integer");
  spec_bad(NULL, "\"linux\":{\"devices\":[{\"path\":\"dev/x\",\"type\":\"p\"}]}", KV_E_INVALID,
           "linux.devices[0].path must be an absolute path");
  spec_bad(NULL, "\"linux\":{\"maskedPaths\":[\"proc\"]}", KV_E_INVALID,
           "spec: linux.maskedPaths[0] must be an absolute path");
  spec_bad(NULL, "\"linux\":{\"readonlyPaths\":[\"/a/./b\"]}", KV_E_INVALID,
           "spec: linux.readonlyPaths[0] must not contain");
  spec_bad(NULL, "\"linux\":{\"sysctl\":{\"kernel.x\":1}}", KV_E_INVALID,
           "spec: linux.sysctl.kernel.x must be a string");
  spec_bad(NULL, "\"linux\":{\"sysctl\":{\"../x\":\"1\"}}", KV_E_INVALID,
           "linux.sysctl: \"../x\" is not a sysctl name");
  spec_bad(NULL, "\"linux\":{\"rootfsPropagation\":\"sideways\"}", KV_E_INVALID,
           "spec: linux.rootfsPropagation: unknown value \"sideways\"");
}
END_TEST

START_TEST(test_resources) {
  g_autoptr(KvOciSpec) s = spec_ok(
      NULL, "\"linux\":{\"resources\":{\"memory\":{\"limit\":67108864,\"reservation\":"
            "33554432,\"swap\":-1},\"cpu\":{\"shares\":512,\"quota\":50000,\"period\":100000,"
            "\"cpus\":\"0-1,3\",\"mems\":\"0\"},\"pids\":{\"limit\":64}}}");
  KvOciResources *r = &s->resources;
  ck_assert_int_eq(r->memory_limit, 67108864);
  ck_assert_int_eq(r->memory_reservation, 33554432);
  ck_assert_int_eq(r->memory_swap, -1);
  ck_assert_int_eq(r->cpu_shares, 512);
  ck_assert_int_eq(r->cpu_quota, 50000);
  ck_assert_int_eq(r->cpu_period, 100000);
  ck_assert_str_eq(r->cpuset_cpus, "0-1,3");
  ck_assert_str_eq(r->cpuset_mems, "0");
  ck_assert_int_eq(r->pids_limit, 64);

  /* 0 means "not set", as in runc. */
  g_autoptr(KvOciSpec) z =
      spec_ok(NULL, "\"linux\":{\"resources\":{\"memory\":{\"limit\":0},\"cpu\":{\"quota\":0}}}");
  ck_assert_int_eq(z->resources.memory_limit, -1);
  ck_assert_int_eq(z->resources.cpu_quota, -1);

  spec_bad(NULL, "\"linux\":{\"resources\":{\"memory\":{\"limit\":1000}}}", KV_E_INVALID,
           "spec: linux.resources.memory.limit 1000 is below the minimum of 4 MiB");
  spec_bad(NULL, "\"linux\":{\"resources\":{\"memory\":{\"limit\":\"1G\"}}}", KV_E_INVALID,
           "spec: linux.resources.memory.limit must be an integer");
  spec_bad(NULL, "\"linux\":{\"resources\":{\"cpu\":{\"shares\":262145}}}", KV_E_INVALID,
           "spec: linux.resources.cpu.shares must be an integer");
  spec_bad(NULL, "\"linux\":{\"resources\":{\"cpu\":{\"period\":10}}}", KV_E_INVALID,
           "spec: linux.resources.cpu.period must be at least 1000");
  spec_bad(NULL, "\"linux\":{\"resources\":{\"cpu\":{\"quota\":10}}}", KV_E_INVALID,
           "linux.resources.cpu.quota must be at least 1000");
  spec_bad(NULL, "\"linux\":{\"resources\":{\"cpu\":{\"cpus\":\"0;1\"}}}", KV_E_INVALID,
           "spec: linux.resources.cpu.cpus \"0;1\" is not a CPU list");
  spec_bad(NULL, "\"linux\":{\"resources\":{\"pids\":{\"limit\":true}}}", KV_E_INVALID,
           "spec: linux.resources.pids.limit must be an integer");
  spec_bad(NULL, "\"linux\":{\"resources\":{\"memory\":[]}}", KV_E_INVALID,
           "spec: linux.resources.memory must be an object");
}
END_TEST

/* ---- seccomp: read by ocispec, compiled by the agent ---- */

static const char *const seccomp_profile =
    "\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"defaultErrnoRet\":1,"
    "\"architectures\":[\"SCMP_ARCH_X86_64\",\"SCMP_ARCH_X86\"],"
    "\"flags\":[\"SECCOMP_FILTER_FLAG_LOG\"],"
    "\"syscalls\":[{\"names\":[\"mkdir\",\"mkdirat\"],\"action\":\"SCMP_ACT_ERRNO\","
    "\"errnoRet\":13},"
    "{\"name\":\"personality\",\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":0,\"value\":"
    "8,\"valueTwo\":0,\"op\":\"SCMP_CMP_NE\"},{\"index\":1,\"value\":18446744073709551615,"
    "\"valueTwo\":1,\"op\":\"SCMP_CMP_MASKED_EQ\"}]}]}}";

START_TEST(test_seccomp_fields) {
  g_autoptr(KvOciSpec) s = spec_ok(NULL, seccomp_profile);
  KvOciSeccomp *sc = s->seccomp;
  ck_assert_ptr_nonnull(sc);
  ck_assert_str_eq(sc->default_action, "SCMP_ACT_ALLOW");
  ck_assert(sc->has_default_errno_ret);
  ck_assert_uint_eq(sc->default_errno_ret, 1);
  ck_assert_str_eq(sc->architectures[1], "SCMP_ARCH_X86");
  ck_assert_str_eq(sc->flags[0], "SECCOMP_FILTER_FLAG_LOG");
  ck_assert_uint_eq(sc->syscalls->len, 2);
  KvOciSeccompRule *r0 = sc->syscalls->pdata[0];
  ck_assert_str_eq(r0->names[1], "mkdirat");
  ck_assert_str_eq(r0->action, "SCMP_ACT_ERRNO");
  ck_assert(r0->has_errno_ret);
  ck_assert_uint_eq(r0->errno_ret, 13);
  ck_assert_uint_eq(r0->args->len, 0);
  KvOciSeccompRule *r1 = sc->syscalls->pdata[1];
  ck_assert_str_eq(r1->names[0], "personality");
  ck_assert_ptr_null(r1->names[1]);
  ck_assert(!r1->has_errno_ret);
  ck_assert_uint_eq(r1->args->len, 2);
  KvOciSeccompArg *a = r1->args->pdata[0];
  ck_assert_uint_eq(a->index, 0);
  ck_assert(a->value == 8);
  ck_assert_str_eq(a->op, "SCMP_CMP_NE");
  KvOciSeccompArg *a1 = r1->args->pdata[1];
  ck_assert_uint_eq(a1->index, 1);
  ck_assert(a1->value == G_MAXUINT64);
  ck_assert(a1->value_two == 1);
}
END_TEST

START_TEST(test_seccomp_malformed) {
  spec_bad(NULL, "\"linux\":{\"seccomp\":[]}", KV_E_INVALID,
           "spec: linux.seccomp must be an object");
  spec_bad(NULL, "\"linux\":{\"seccomp\":{}}", KV_E_INVALID,
           "spec: linux.seccomp.defaultAction is required");
  spec_bad(NULL,
           "\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"defaultErrnoRet\":"
           "70000}}",
           KV_E_INVALID, "spec: linux.seccomp.defaultErrnoRet must be an integer from 0 to 65535");
  spec_bad(NULL,
           "\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{"
           "\"names\":[\"read\"]}]}}",
           KV_E_INVALID, "spec: linux.seccomp.syscalls[0].action is required");
  spec_bad(NULL,
           "\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{"
           "\"action\":\"SCMP_ACT_ALLOW\"}]}}",
           KV_E_INVALID, "spec: linux.seccomp.syscalls[0].names must be a non-empty array");
  spec_bad(NULL,
           "\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{"
           "\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":6,\"op\":"
           "\"SCMP_CMP_EQ\"}]}]}}",
           KV_E_INVALID,
           "spec: linux.seccomp.syscalls[0].args[0].index must be an integer from 0 to 5");
  spec_bad(NULL,
           "\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{"
           "\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":0}]}]}}",
           KV_E_INVALID, "spec: linux.seccomp.syscalls[0].args[0].op is required");
  spec_bad(NULL,
           "\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{"
           "\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{},{},{},{},{},{},{}]}]}}",
           KV_E_INVALID, "spec: linux.seccomp.syscalls[0].args has more than 6 conditions");
  spec_bad(NULL,
           "\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{"
           "\"names\":[7],\"action\":\"SCMP_ACT_ERRNO\"}]}}",
           KV_E_INVALID, "spec: linux.seccomp.syscalls[0].names[0] must be a string");
  spec_bad(NULL,
           "\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"listenerPath\":\"/"
           "run/l.sock\"}}",
           KV_E_UNSUPPORTED, "spec: linux.seccomp.listenerPath is not supported");
  spec_bad(NULL, "\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[1]}}",
           KV_E_INVALID, "spec: linux.seccomp.syscalls[0] must be an object");
}
END_TEST

static void compile_bad(const char *seccomp, int code, const char *needle) {
  g_autoptr(JsonObject) o = parse(seccomp);
  g_autoptr(GError) e = NULL;
  g_autoptr(KvOciSeccomp) sc = kv_ocispec_seccomp_parse(o, "spec: linux.seccomp", &e);
  ck_assert_msg(sc != NULL, "%s: %s", seccomp, e ? e->message : "");
  AgentSeccomp *c = agent_seccomp_compile(sc, &e);
  ck_assert_msg(c == NULL, "%s: compiled", seccomp);
  ck_assert(e->domain == KV_ERROR_DOMAIN);
  ck_assert_msg(e->code == code, "%s: code %d (%s)", seccomp, e->code, e->message);
  ck_assert_msg(strstr(e->message, needle) != NULL, "\"%s\" lacks \"%s\"", e->message, needle);
}

START_TEST(test_seccomp_compile) {
  g_autoptr(KvOciSpec) s = spec_ok(NULL, seccomp_profile);
  g_autoptr(GError) e = NULL;
  g_autoptr(AgentSeccomp) c = agent_seccomp_compile(s->seccomp, &e);
  ck_assert_msg(c != NULL, "%s", e ? e->message : "");

  compile_bad("{\"defaultAction\":\"SCMP_ACT_DANCE\"}", KV_E_INVALID,
              "spec: linux.seccomp: defaultAction: unknown action \"SCMP_ACT_DANCE\"");
  compile_bad("{\"defaultAction\":\"SCMP_ACT_NOTIFY\"}", KV_E_UNSUPPORTED,
              "SCMP_ACT_NOTIFY is not supported");
  compile_bad("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"],"
              "\"action\":\"SCMP_ACT_JUMP\"}]}",
              KV_E_INVALID, "syscalls[0].action: unknown action \"SCMP_ACT_JUMP\"");
  compile_bad("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],"
              "\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,\"op\":\"SCMP_CMP_ABOUT\"}]}]}",
              KV_E_INVALID, "syscalls[0].args[0]: unknown operator \"SCMP_CMP_ABOUT\"");
  compile_bad("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_VAX\"]}",
              KV_E_INVALID, "unknown architecture \"SCMP_ARCH_VAX\"");
  compile_bad("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"flags\":[\"SECCOMP_FILTER_FLAG_FAST\"]}",
              KV_E_INVALID, "unknown flag \"SECCOMP_FILTER_FLAG_FAST\"");
}
END_TEST

static Suite *spec_suite(void) {
  Suite *s = suite_create("agent_spec");
  TCase *p = tcase_create("process");
  tcase_add_test(p, test_process_defaults);
  tcase_add_test(p, test_process_fields);
  tcase_add_test(p, test_process_malformed);
  tcase_add_test(p, test_exec_process_defaults);
  suite_add_tcase(s, p);
  TCase *t = tcase_create("spec");
  tcase_add_test(t, test_root_hostname);
  tcase_add_test(t, test_storage_size_annotation);
  tcase_add_test(t, test_mounts);
  tcase_add_test(t, test_namespaces);
  tcase_add_test(t, test_devices_paths_sysctl);
  tcase_add_test(t, test_resources);
  suite_add_tcase(s, t);
  TCase *sc = tcase_create("seccomp");
  tcase_add_test(sc, test_seccomp_fields);
  tcase_add_test(sc, test_seccomp_malformed);
  tcase_add_test(sc, test_seccomp_compile);
  suite_add_tcase(s, sc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(spec_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}

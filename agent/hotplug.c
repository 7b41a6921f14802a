/* agent/hotplug.c: the guest half of hotplug (the cpus_set, nic_* and disk_* methods of
 * lib/proto/msg.h): onlining and offlining CPUs, configuring a hot-added NIC found
 * by its MAC (through libnl's route API rather than hand-built netlink
 * messages), and finding a hot-added disk by its serial and mounting it
 * into a running container's mount namespace. Memory needs no method: the
 * kernel onlines virtio-mem blocks itself (memhp_default_state=online). */
#include "hotplug.h"

#include "container.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

/* A hot-added device shows up some milliseconds after the host's attach
 * returns (PCI hotplug, driver probe). */
#define DEVICE_WAIT_US (20 * G_USEC_PER_SEC)

static gboolean fail(GError **error, KvCode code, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static gboolean fail(GError **error, KvCode code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *m = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  agent_debug("hotplug: %s", m);
  g_set_error_literal(error, KV_ERROR_DOMAIN, code, m);
  return FALSE;
}

/* ---- CPUs ---- */

static int online_count(void) {
  int n = 0;
  for (int cpu = 0; cpu < 1024; cpu++) {
    g_autofree char *dir = g_strdup_printf("/sys/devices/system/cpu/cpu%d", cpu);
    if (!g_file_test(dir, G_FILE_TEST_IS_DIR))
      break;
    g_autofree char *f = g_strdup_printf("%s/online", dir);
    g_autofree char *v = NULL;
    /* cpu0 has no "online" file: it is always online. */
    if (!g_file_get_contents(f, &v, NULL, NULL) || v[0] == '1')
      n++;
  }
  return n;
}

static gboolean set_online(int cpu, gboolean on) {
  g_autofree char *f = g_strdup_printf("/sys/devices/system/cpu/cpu%d/online", cpu);
  int fd = open(f, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return FALSE;
  gboolean ok = write(fd, on ? "1" : "0", 1) == 1;
  close(fd);
  return ok;
}

gboolean agent_m_cpus_set(AgentCall *call, const KvCpusSetParams *params, KvCpusResult *r,
                          GError **error) {
  gint64 want = params->online; /* 1..1024 (the contract) */
  /* A vCPU plugged by the host appears a moment later; wait for it. */
  gint64 deadline = g_get_monotonic_time() + DEVICE_WAIT_US;
  for (int cpu = 1; cpu < want; cpu++) {
    g_autofree char *dir = g_strdup_printf("/sys/devices/system/cpu/cpu%d", cpu);
    while (!g_file_test(dir, G_FILE_TEST_IS_DIR) && g_get_monotonic_time() < deadline)
      g_usleep(20000);
    if (!set_online(cpu, TRUE)) {
      return fail(error, KV_E_IO, "cannot online cpu%d: %s", cpu, g_strerror(errno));
    }
  }
  /* Shrinking offlines (the host never unplugs vCPUs). */
  for (int cpu = (int)want; cpu < 1024; cpu++) {
    g_autofree char *dir = g_strdup_printf("/sys/devices/system/cpu/cpu%d", cpu);
    if (!g_file_test(dir, G_FILE_TEST_IS_DIR))
      break;
    g_autofree char *f = g_strdup_printf("%s/online", dir);
    g_autofree char *v = NULL;
    if (g_file_get_contents(f, &v, NULL, NULL) && v[0] == '1' && !set_online(cpu, FALSE)) {
      return fail(error, KV_E_IO, "cannot offline cpu%d: %s", cpu, g_strerror(errno));
    }
  }
  r->cpus_online = online_count();
  return TRUE;
}

/* ---- NICs ---- */

static char *iface_by_mac(const char *mac) {
  g_autoptr(GDir) d = g_dir_open("/sys/class/net", 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name(d))) {
    g_autofree char *f = g_strdup_printf("/sys/class/net/%s/address", name);
    g_autofree char *v = NULL;
    if (g_file_get_contents(f, &v, NULL, NULL) && !g_ascii_strncasecmp(g_strstrip(v), mac, 17))
      return g_strdup(name);
  }
  return NULL;
}

static struct nl_sock *nl_open(void) {
  struct nl_sock *sk = nl_socket_alloc();
  if (sk && nl_connect(sk, NETLINK_ROUTE) < 0) {
    nl_socket_free(sk);
    return NULL;
  }
  return sk;
}

/* Set MTU and up/down on an interface. */
static int link_set(struct nl_sock *sk, int ifindex, guint mtu, gboolean up) {
  struct rtnl_link *orig = NULL, *change = rtnl_link_alloc();
  int rc = rtnl_link_get_kernel(sk, ifindex, NULL, &orig);
  if (rc >= 0) {
    if (mtu)
      rtnl_link_set_mtu(change, mtu);
    if (up)
      rtnl_link_set_flags(change, IFF_UP);
    else
      rtnl_link_unset_flags(change, IFF_UP);
    rc = rtnl_link_change(sk, orig, change, 0);
  }
  if (orig)
    rtnl_link_put(orig);
  rtnl_link_put(change);
  return rc;
}

gboolean agent_net_lo_up(GError **error) {
  struct nl_sock *sk = nl_open();
  if (!sk)
    return fail(error, KV_E_IO, "lo: cannot open a netlink socket");
  int ifindex = (int)if_nametoindex("lo");
  int rc = ifindex > 0 ? link_set(sk, ifindex, 0, TRUE) : -NLE_NODEV;
  nl_socket_free(sk);
  if (rc < 0)
    return fail(error, KV_E_IO, "lo: cannot bring it up: %s", nl_geterror(rc));
  return TRUE;
}

/* Add a route (FALSE: its addresses do not parse; *rc: netlink's answer). */
static gboolean route_add(struct nl_sock *sk, int ifindex, const KvRoute *r, int *rc) {
  struct nl_addr *dst = NULL, *gw = NULL;
  if (nl_addr_parse(r->dst, AF_UNSPEC, &dst) < 0 || !strchr(r->dst, '/') ||
      (r->gateway && (nl_addr_parse(r->gateway, nl_addr_get_family(dst), &gw) < 0 ||
                      nl_addr_get_family(gw) != nl_addr_get_family(dst)))) {
    if (dst)
      nl_addr_put(dst);
    if (gw)
      nl_addr_put(gw);
    return FALSE;
  }
  struct rtnl_route *rt = rtnl_route_alloc();
  struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
  rtnl_route_nh_set_ifindex(nh, ifindex);
  if (gw)
    rtnl_route_nh_set_gateway(nh, gw);
  rtnl_route_add_nexthop(rt, nh);
  rtnl_route_set_dst(rt, dst);
  rtnl_route_set_family(rt, (uint8_t)nl_addr_get_family(dst));
  if (!gw)
    rtnl_route_set_scope(rt, RT_SCOPE_LINK);
  if (r->metric > 0)
    rtnl_route_set_priority(rt, (uint32_t)r->metric);
  *rc = rtnl_route_add(sk, rt, NLM_F_REPLACE);
  rtnl_route_put(rt);
  nl_addr_put(dst);
  if (gw)
    nl_addr_put(gw);
  return TRUE;
}

/* Add a permanent neighbour entry (FALSE: it does not parse). */
static gboolean neigh_add(struct nl_sock *sk, int ifindex, const KvNeighbour *nb, int *rc) {
  struct nl_addr *dst = NULL, *ll = NULL;
  if (nl_addr_parse(nb->address, AF_UNSPEC, &dst) < 0 || strchr(nb->address, '/') ||
      strlen(nb->mac) != 17 || nl_addr_parse(nb->mac, AF_LLC, &ll) < 0) {
    if (dst)
      nl_addr_put(dst);
    if (ll)
      nl_addr_put(ll);
    return FALSE;
  }
  struct rtnl_neigh *n = rtnl_neigh_alloc();
  rtnl_neigh_set_ifindex(n, ifindex);
  rtnl_neigh_set_dst(n, dst);
  rtnl_neigh_set_lladdr(n, ll);
  rtnl_neigh_set_state(n, NUD_PERMANENT);
  *rc = rtnl_neigh_add(sk, n, NLM_F_CREATE | NLM_F_REPLACE);
  rtnl_neigh_put(n);
  nl_addr_put(dst);
  nl_addr_put(ll);
  return TRUE;
}

gboolean agent_m_nic_config(AgentCall *call, const KvNicConfigParams *params, KvNicConfigResult *r,
                            GError **error) {
  const char *mac = params->mac;
  if (!mac || strlen(mac) != 17) {
    return fail(error, KV_E_INVALID, "nic_config: mac must be xx:xx:xx:xx:xx:xx");
  }
  g_autofree char *ifname = NULL;
  gint64 deadline = g_get_monotonic_time() + DEVICE_WAIT_US;
  while (!(ifname = iface_by_mac(mac)) && g_get_monotonic_time() < deadline)
    g_usleep(20000);
  if (!ifname) {
    return fail(error, KV_E_NOT_FOUND, "no network interface with MAC %s appeared", mac);
  }
  struct nl_sock *sk = nl_open();
  if (!sk) {
    return fail(error, KV_E_IO, "netlink: cannot connect");
  }
  int ifindex = (int)if_nametoindex(ifname);
  int rc = link_set(sk, ifindex, (guint)params->mtu, TRUE);
  for (char **ap = params->addresses; rc >= 0 && ap != NULL && *ap != NULL; ap++) {
    const char *cidr = *ap;
    struct nl_addr *local = NULL;
    if (!cidr || nl_addr_parse(cidr, AF_UNSPEC, &local) < 0 || !strchr(cidr, '/')) {
      nl_socket_free(sk);
      return fail(error, KV_E_INVALID, "nic_config: address '%s' is not CIDR", cidr ? cidr : "?");
    }
    struct rtnl_addr *a = rtnl_addr_alloc();
    rtnl_addr_set_ifindex(a, ifindex);
    rtnl_addr_set_local(a, local);
    /* The address is the host namespace's own: usable at once, no DAD. */
    if (nl_addr_get_family(local) == AF_INET6)
      rtnl_addr_set_flags(a, IFA_F_NODAD);
    rc = rtnl_addr_add(sk, a, NLM_F_REPLACE);
    rtnl_addr_put(a);
    nl_addr_put(local);
  }
  const char *gw = params->gateway;
  if (rc >= 0 && gw) {
    struct nl_addr *gwa = NULL, *dst = NULL;
    if (nl_addr_parse(gw, AF_UNSPEC, &gwa) < 0) {
      nl_socket_free(sk);
      return fail(error, KV_E_INVALID, "nic_config: gateway '%s' is not an address", gw);
    }
    nl_addr_parse(nl_addr_get_family(gwa) == AF_INET6 ? "::/0" : "0.0.0.0/0", AF_UNSPEC, &dst);
    struct rtnl_route *rt = rtnl_route_alloc();
    struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
    rtnl_route_nh_set_ifindex(nh, ifindex);
    rtnl_route_nh_set_gateway(nh, gwa);
    rtnl_route_add_nexthop(rt, nh);
    rtnl_route_set_dst(rt, dst);
    rtnl_route_set_family(rt, (uint8_t)nl_addr_get_family(gwa));
    rc = rtnl_route_add(sk, rt, NLM_F_REPLACE);
    rtnl_route_put(rt);
    nl_addr_put(gwa);
    nl_addr_put(dst);
  }
  /* On-link routes first: the gateways of the others may need them. */
  for (int pass = 0; pass < 2; pass++)
    for (guint i = 0; rc >= 0 && params->routes && i < params->routes->len; i++) {
      const KvRoute *rt = params->routes->pdata[i];
      if ((rt->gateway != NULL) != (pass == 1))
        continue;
      if (!route_add(sk, ifindex, rt, &rc)) {
        nl_socket_free(sk);
        return fail(error, KV_E_INVALID, "nic_config: route to '%s' via '%s' is not valid", rt->dst,
                    rt->gateway ? rt->gateway : "(on-link)");
      }
    }
  for (guint i = 0; rc >= 0 && params->neighbours && i < params->neighbours->len; i++) {
    const KvNeighbour *nb = params->neighbours->pdata[i];
    if (!neigh_add(sk, ifindex, nb, &rc)) {
      nl_socket_free(sk);
      return fail(error, KV_E_INVALID, "nic_config: neighbour '%s' at '%s' is not valid",
                  nb->address, nb->mac);
    }
  }
  nl_socket_free(sk);
  if (rc < 0) {
    return fail(error, KV_E_IO, "configuring %s: %s", ifname, nl_geterror(rc));
  }
  r->ifname = g_steal_pointer(&ifname);
  return TRUE;
}

gboolean agent_m_nic_remove(AgentCall *call, const KvNicRemoveParams *params, KvEmpty *r,
                            GError **error) {
  const char *mac = params->mac;
  g_autofree char *ifname = mac ? iface_by_mac(mac) : NULL;
  if (!ifname) {
    return fail(error, KV_E_NOT_FOUND, "no network interface with MAC %s", mac ? mac : "?");
  }
  struct nl_sock *sk = nl_open();
  if (sk) {
    link_set(sk, (int)if_nametoindex(ifname), 0, FALSE);
    nl_socket_free(sk);
  }
  return TRUE;
}

/* ---- disks ---- */

typedef struct {
  char *serial;
  char *device;    /* /dev/vdX */
  char *container; /* mounted there, or NULL */
  char *path;
  pid_t ns_pid; /* the container's init at mount time */
} Disk;

static GHashTable *disks; /* serial -> Disk* */

static void disk_free(gpointer p) {
  Disk *d = p;
  g_free(d->serial);
  g_free(d->device);
  g_free(d->container);
  g_free(d->path);
  g_free(d);
}

static char *block_by_serial(const char *serial, dev_t *devnum) {
  g_autoptr(GDir) d = g_dir_open("/sys/block", 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name(d))) {
    g_autofree char *f = g_strdup_printf("/sys/block/%s/serial", name);
    g_autofree char *v = NULL;
    if (!g_file_get_contents(f, &v, NULL, NULL) || strcmp(g_strstrip(v), serial))
      continue;
    g_autofree char *df = g_strdup_printf("/sys/block/%s/dev", name);
    g_autofree char *dv = NULL;
    unsigned maj = 0, min = 0;
    if (!g_file_get_contents(df, &dv, NULL, NULL) || sscanf(dv, "%u:%u", &maj, &min) != 2)
      continue;
    *devnum = makedev(maj, min);
    return g_strdup_printf("/dev/%s", name);
  }
  return NULL;
}

/* Runs in a child that entered the container's mount namespace: the
 * container's /dev has no node for the new disk, so make a transient one,
 * mount from it and remove it. Returns an errno-style code. */
static int mount_in_ns(pid_t ns_pid, dev_t devnum, const char *path, gboolean ro,
                       gboolean unmount) {
  g_autofree char *ns = g_strdup_printf("/proc/%d/ns/mnt", (int)ns_pid);
  g_autofree char *node = g_strdup_printf("/dev/.katavm-disk-%d", (int)getpid());
  /* Everything the child needs is allocated before fork (the agent has
   * threads): the child only makes system calls. */
  g_autofree char *walk = g_strdup(path);
  static const char *const fstypes[] = {"ext4", "xfs", "btrfs", "vfat", NULL};
  int nsfd = open(ns, O_RDONLY | O_CLOEXEC);
  if (nsfd < 0)
    return errno;
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(nsfd);
    return e;
  }
  if (pid == 0) {
    if (setns(nsfd, CLONE_NEWNS) < 0)
      _exit(errno);
    if (unmount)
      _exit(umount2(path, 0) < 0 ? (errno == EBUSY && umount2(path, MNT_DETACH) == 0 ? 0 : errno)
                                 : 0);
    for (char *p = walk + 1;; p++) {
      if (*p == '/' || *p == '\0') {
        char saved = *p;
        *p = '\0';
        if (mkdir(walk, 0755) < 0 && errno != EEXIST)
          _exit(errno);
        *p = saved;
        if (!saved)
          break;
      }
    }
    if (mknod(node, S_IFBLK | 0600, devnum) < 0)
      _exit(errno);
    int e = EINVAL;
    for (const char *const *t = fstypes; *t; t++) {
      if (mount(node, path, *t, ro ? MS_RDONLY : 0, NULL) == 0) {
        e = 0;
        break;
      }
      e = errno;
    }
    unlink(node);
    _exit(e);
  }
  close(nsfd);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  return WIFEXITED(st) ? WEXITSTATUS(st) : EIO;
}

gboolean agent_m_disk_add(AgentCall *call, const KvDiskAddParams *params, KvDiskAddResult *r,
                          GError **error) {
  if (!disks)
    disks = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, disk_free);
  const char *serial = params->serial; /* 1..20 bytes (the contract) */
  const Disk *have = g_hash_table_lookup(disks, serial);
  if (have) {
    /* A disk set up on its own can be given to a container (again, once
     * the one it was mounted in is gone). */
    AgentContainer *in = have->container ? agent_container_lookup(have->container, NULL) : NULL;
    gboolean busy = in && in->init && in->init->pid == have->ns_pid && kill(have->ns_pid, 0) == 0;
    if (!params->container_id || !params->path || busy)
      return fail(error, KV_E_EXISTS, "disk %s is already set up%s%s", serial,
                  busy ? " and mounted in container " : "", busy ? have->container : "");
  }
  dev_t devnum = 0;
  g_autofree char *dev = NULL;
  gint64 deadline = g_get_monotonic_time() + DEVICE_WAIT_US;
  while (!(dev = block_by_serial(serial, &devnum)) && g_get_monotonic_time() < deadline)
    g_usleep(20000);
  if (!dev) {
    return fail(error, KV_E_NOT_FOUND, "no disk with serial %s appeared", serial);
  }
  Disk *d = g_new0(Disk, 1);
  d->serial = g_strdup(serial);
  d->device = g_strdup(dev);
  const char *cid = params->container_id;
  const char *path = params->path;
  if (cid && path) {
    g_autoptr(GError) e = NULL;
    AgentContainer *ct = agent_container_lookup(cid, &e);
    /* A created container's mount namespace is complete (its init waits
     * for start after the mounts): disk volumes are mounted there before
     * the main process runs. */
    if (!ct || !ct->init || ct->init->pid <= 0 ||
        (ct->status != AGENT_CONTAINER_RUNNING && ct->status != AGENT_CONTAINER_CREATED)) {
      disk_free(d);
      return fail(error, ct ? KV_E_STATE : KV_E_NOT_FOUND, "container %s: %s", cid,
                  e ? e->message : "not running");
    }
    if (path[0] != '/' || strstr(path, "..")) {
      disk_free(d);
      return fail(error, KV_E_INVALID, "disk mount path '%s' must be absolute, without '..'", path);
    }
    gboolean ro = params->readonly;
    int rc = mount_in_ns(ct->init->pid, devnum, path, ro, FALSE);
    if (rc) {
      disk_free(d);
      return fail(error, KV_E_IO, "mounting %s at %s in container %s: %s", dev, path, cid,
                  g_strerror(rc));
    }
    d->container = g_strdup(cid);
    d->path = g_strdup(path);
    d->ns_pid = ct->init->pid;
  }
  g_hash_table_replace(disks, d->serial, d);
  r->device = g_strdup(dev);
  return TRUE;
}

gboolean agent_m_disk_remove(AgentCall *call, const KvDiskRemoveParams *params, KvEmpty *r,
                             GError **error) {
  const char *serial = params->serial;
  Disk *d = serial && disks ? g_hash_table_lookup(disks, serial) : NULL;
  if (!d) {
    return fail(error, KV_E_NOT_FOUND, "disk %s is not set up", serial ? serial : "?");
  }
  if (d->container) {
    dev_t unused = 0;
    int rc = kill(d->ns_pid, 0) == 0 ? mount_in_ns(d->ns_pid, unused, d->path, FALSE, TRUE) : 0;
    if (rc && rc != EINVAL && rc != ENOENT) {
      return fail(error, KV_E_IO, "unmounting %s from container %s: %s", d->path, d->container,
                  g_strerror(rc));
    }
  }
  /* Flush before the host pulls the device. */
  sync();
  g_hash_table_remove(disks, serial);
  return TRUE;
}

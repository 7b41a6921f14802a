/* lib/shim/net.c: the sandbox's network namespace reaches the guest through
 * taps and tc redirects (net.h says what and in which order).
 *
 * QEMU runs in the host's namespace and libvirt opens an unmanaged tap by
 * name, so a tap is made in the host namespace (persistent, /dev/net/tun),
 * attached, then moved into the sandbox's namespace, where it goes up and
 * gets its redirects. Netlink inside that namespace goes through a socket
 * opened there by a short-lived thread that joined it (setns): the socket
 * stays in the namespace, the shim's threads do not move.
 *
 * Every tap is recorded in state.json before it is made, and whether the
 * interface's ingress qdisc is ours before that is added, so that a
 * failure, a destroy, or a --cleanup after a crashed shim removes exactly
 * what the shim made: deleting a tap takes its qdisc and filter with it;
 * the interface's ingress qdisc (and its filter) is deleted by hand. */
#include "net.h"

#include "publish.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_tun.h>
#include <linux/nsfs.h>
#include <linux/pkt_sched.h>
#include <linux/tc_act/tc_mirred.h>
#include <net/if.h>
#include <netlink/route/act/mirred.h>
#include <netlink/route/addr.h>
#include <netlink/route/classifier.h>
#include <netlink/route/cls/u32.h>
#include <netlink/route/link.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/route.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define NIC_CONFIG_TIMEOUT_MS 60000
#define FILTER_PRIO 49152

/* An interface of the namespace that the guest takes over. */
typedef struct {
  char *link;
  char *mac;
  guint mtu;
  GPtrArray *addresses;  /* char* CIDR */
  GPtrArray *routes;     /* KvRoute* */
  GPtrArray *neighbours; /* KvNeighbour* */
} Iface;

struct _Net {
  Shim *s;
  char *netns;     /* as the config names it */
  GPtrArray *ifs;  /* Iface*, found by net_prepare */
  GPtrArray *taps; /* KvNetTap*: made, or about to be */
  gboolean known;  /* taps is the record (create, recover); else state.json is */
  int held;        /* net_hold: the namespace as the client opened it, or -1 */
  Iface *user;     /* net "user": the guest's slirp interface */
};

static void route_free(gpointer p) {
  KvRoute *r = p;
  g_free(r->dst);
  g_free(r->gateway);
  g_free(r);
}

static void neigh_free(gpointer p) {
  KvNeighbour *nb = p;
  g_free(nb->address);
  g_free(nb->mac);
  g_free(nb);
}

static void iface_free(gpointer p) {
  Iface *i = p;
  g_free(i->link);
  g_free(i->mac);
  g_ptr_array_unref(i->addresses);
  g_ptr_array_unref(i->routes);
  g_ptr_array_unref(i->neighbours);
  g_free(i);
}

static void tap_free(gpointer p) {
  KvNetTap *t = p;
  g_free(t->tap);
  g_free(t->link);
  g_free(t->mac);
  g_free(t);
}

static KvNetTap *tap_copy(const KvNetTap *t) {
  KvNetTap *c = g_new0(KvNetTap, 1);
  c->tap = g_strdup(t->tap);
  c->link = g_strdup(t->link);
  c->mac = g_strdup(t->mac);
  c->qdisc = t->qdisc;
  return c;
}

static void describe(gpointer user, KvShimStateResult *o) {
  Net *n = user;
  if (!n->netns)
    return;
  o->netns = g_strdup(n->netns);
  o->net_taps = g_ptr_array_new(); /* elements as kv_msg_clear frees them */
  for (guint i = 0; i < n->taps->len; i++)
    g_ptr_array_add(o->net_taps, tap_copy(n->taps->pdata[i]));
}

Net *net_new(Shim *s) {
  Net *n = g_new0(Net, 1);
  n->s = s;
  n->ifs = g_ptr_array_new_with_free_func(iface_free);
  n->taps = g_ptr_array_new_with_free_func(tap_free);
  n->held = -1;
  shim_add_describer(s, describe, n);
  return n;
}

void net_free(Net *n) {
  if (!n)
    return;
  g_free(n->netns);
  if (n->held >= 0)
    close(n->held);
  g_ptr_array_unref(n->ifs);
  g_ptr_array_unref(n->taps);
  if (n->user)
    iface_free(n->user);
  g_free(n);
}

void net_restore(Net *n, const KvShimStateResult *st) {
  n->known = TRUE;
  g_clear_pointer(&n->netns, g_free);
  g_ptr_array_set_size(n->taps, 0);
  if (!st->netns)
    return;
  n->netns = g_strdup(st->netns);
  for (guint i = 0; st->net_taps && i < st->net_taps->len; i++)
    g_ptr_array_add(n->taps, tap_copy(st->net_taps->pdata[i]));
}

/* ---- netlink, here and in the namespace ---- */

static gboolean nl_fail(GError **error, int rc, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static gboolean nl_fail(GError **error, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *m = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "%s: %s", m, nl_geterror(rc));
  return FALSE;
}

/* An fd of the sandbox's network namespace (n->netns, or the fd a client
 * handed over for it). */
static int netns_open(Net *n, GError **error) {
  const char *path = n->netns;
  int fd = n->held >= 0 ? fcntl(n->held, F_DUPFD_CLOEXEC, 0) : open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    g_set_error(error, KV_ERROR_DOMAIN, err == ENOENT ? KV_E_NOT_FOUND : KV_E_IO,
                "network namespace %s: %s", path,
                err == ENOENT ? "does not exist" : g_strerror(err));
    return -1;
  }
  if (ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET) {
    close(fd);
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID, "%s is not a network namespace", path);
    return -1;
  }
  return fd;
}

static struct nl_sock *sock_here(GError **error) {
  struct nl_sock *sk = nl_socket_alloc();
  int rc = sk ? nl_connect(sk, NETLINK_ROUTE) : -NLE_NOMEM;
  if (rc < 0) {
    if (sk)
      nl_socket_free(sk);
    nl_fail(error, rc, "netlink");
    return NULL;
  }
  return sk;
}

typedef struct {
  int nsfd;
  struct nl_sock *sk;
  int err;
  GError *error;
} SockIn;

static gpointer sock_in_thread(gpointer p) {
  SockIn *a = p;
  /* This thread only: it ends right after. */
  if (setns(a->nsfd, CLONE_NEWNET) < 0) {
    a->err = errno;
    return NULL;
  }
  a->sk = sock_here(&a->error);
  return NULL;
}

/* A netlink socket inside the namespace nsfd. */
static struct nl_sock *sock_in(int nsfd, const char *path, GError **error) {
  SockIn a = {.nsfd = nsfd};
  g_thread_join(g_thread_new("katavm-netns", sock_in_thread, &a));
  if (a.err)
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "cannot enter network namespace %s: %s", path,
                g_strerror(a.err));
  else if (a.error)
    g_propagate_error(error, a.error);
  return a.sk;
}

/* "10.0.0.2" / "10.0.0.2/24" of a netlink address; a zero-length one (a
 * default route's destination) is the family's zero address. */
static char *addr_str(struct nl_addr *a, gboolean prefix) {
  char buf[INET6_ADDRSTRLEN];
  guint8 zero[16] = {0};
  int fam = a ? nl_addr_get_family(a) : AF_UNSPEC;
  if (fam != AF_INET && fam != AF_INET6)
    return NULL;
  unsigned len = nl_addr_get_len(a);
  if (len && len != (fam == AF_INET ? 4u : 16u))
    return NULL;
  if (!inet_ntop(fam, len ? nl_addr_get_binary_addr(a) : zero, buf, sizeof buf))
    return NULL;
  return prefix ? g_strdup_printf("%s/%u", buf, nl_addr_get_prefixlen(a)) : g_strdup(buf);
}

static char *mac_str(struct nl_addr *a) {
  char buf[32];
  if (!a || nl_addr_get_len(a) != 6)
    return NULL;
  return g_ascii_strdown(nl_addr2str(a, buf, sizeof buf), -1);
}

static gboolean is_link_local6(struct nl_addr *a) {
  const guint8 *b = nl_addr_get_binary_addr(a);
  return nl_addr_get_family(a) == AF_INET6 && nl_addr_get_len(a) == 16 && b[0] == 0xfe &&
         (b[1] & 0xc0) == 0x80;
}

/* ---- finding the interfaces ---- */

static void scan_routes(struct nl_cache *routes, int ifindex, Iface *f) {
  for (struct nl_object *o = nl_cache_get_first(routes); o; o = nl_cache_get_next(o)) {
    struct rtnl_route *r = (struct rtnl_route *)o;
    /* The kernel's own (connected prefixes): the guest's kernel adds them. */
    if (rtnl_route_get_table(r) != RT_TABLE_MAIN || rtnl_route_get_type(r) != RTN_UNICAST ||
        rtnl_route_get_protocol(r) == RTPROT_KERNEL || rtnl_route_get_nnexthops(r) < 1)
      continue;
    struct nl_addr *dst = rtnl_route_get_dst(r);
    if (!dst || is_link_local6(dst))
      continue;
    struct rtnl_nexthop *nh = rtnl_route_nexthop_n(r, 0);
    if (rtnl_route_nh_get_ifindex(nh) != ifindex)
      continue;
    KvRoute *rt = g_new0(KvRoute, 1);
    rt->dst = addr_str(dst, TRUE);
    struct nl_addr *gw = rtnl_route_nh_get_gateway(nh);
    rt->gateway = gw ? addr_str(gw, FALSE) : NULL;
    rt->metric = rtnl_route_get_priority(r);
    if (!rt->dst || (gw && !rt->gateway)) {
      route_free(rt);
      continue;
    }
    g_ptr_array_add(f->routes, rt);
  }
}

static void scan_neighbours(struct nl_cache *neighs, int ifindex, Iface *f) {
  for (struct nl_object *o = nl_cache_get_first(neighs); o; o = nl_cache_get_next(o)) {
    struct rtnl_neigh *nb = (struct rtnl_neigh *)o;
    if (rtnl_neigh_get_ifindex(nb) != ifindex || !(rtnl_neigh_get_state(nb) & NUD_PERMANENT))
      continue;
    g_autofree char *ip = addr_str(rtnl_neigh_get_dst(nb), FALSE);
    g_autofree char *mac = mac_str(rtnl_neigh_get_lladdr(nb));
    if (!ip || !mac)
      continue;
    KvNeighbour *e = g_new0(KvNeighbour, 1);
    e->address = g_steal_pointer(&ip);
    e->mac = g_steal_pointer(&mac);
    g_ptr_array_add(f->neighbours, e);
  }
}

static gboolean scan(Net *n, struct nl_sock *sk, GError **error) {
  struct nl_cache *links = NULL, *addrs = NULL, *routes = NULL, *neighs = NULL;
  int rc;
  if ((rc = rtnl_link_alloc_cache(sk, AF_UNSPEC, &links)) < 0 ||
      (rc = rtnl_addr_alloc_cache(sk, &addrs)) < 0 ||
      (rc = rtnl_route_alloc_cache(sk, AF_UNSPEC, 0, &routes)) < 0 ||
      (rc = rtnl_neigh_alloc_cache(sk, &neighs)) < 0) {
    nl_fail(error, rc, "reading network namespace %s", n->netns);
    goto out;
  }
  for (struct nl_object *o = nl_cache_get_first(links); o; o = nl_cache_get_next(o)) {
    struct rtnl_link *l = (struct rtnl_link *)o;
    int ifindex = rtnl_link_get_ifindex(l);
    const char *type = rtnl_link_get_type(l);
    /* Not loopback, not a tap (ours or anyone's: nothing to redirect). */
    if ((rtnl_link_get_flags(l) & IFF_LOOPBACK) || (type && !strcmp(type, "tun")))
      continue;
    Iface *f = g_new0(Iface, 1);
    f->link = g_strdup(rtnl_link_get_name(l));
    f->mac = mac_str(rtnl_link_get_addr(l));
    f->mtu = rtnl_link_get_mtu(l);
    f->addresses = g_ptr_array_new_with_free_func(g_free);
    f->routes = g_ptr_array_new_with_free_func(route_free);
    f->neighbours = g_ptr_array_new_with_free_func(neigh_free);
    for (struct nl_object *ao = nl_cache_get_first(addrs); ao; ao = nl_cache_get_next(ao)) {
      struct rtnl_addr *a = (struct rtnl_addr *)ao;
      int scope = rtnl_addr_get_scope(a);
      if (rtnl_addr_get_ifindex(a) != ifindex || scope == RT_SCOPE_LINK || scope == RT_SCOPE_HOST)
        continue;
      struct nl_addr *local = rtnl_addr_get_local(a);
      g_autofree char *ip = addr_str(local, FALSE);
      if (ip)
        g_ptr_array_add(f->addresses, g_strdup_printf("%s/%d", ip, rtnl_addr_get_prefixlen(a)));
    }
    if (!f->addresses->len || !f->mac) {
      iface_free(f);
      continue;
    }
    scan_routes(routes, ifindex, f);
    scan_neighbours(neighs, ifindex, f);
    g_ptr_array_add(n->ifs, f);
  }
  if (!n->ifs->len)
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID,
                "network namespace %s has no interface with an address (lo excepted)", n->netns);
out:
  if (links)
    nl_cache_free(links);
  if (addrs)
    nl_cache_free(addrs);
  if (routes)
    nl_cache_free(routes);
  if (neighs)
    nl_cache_free(neighs);
  return n->ifs->len > 0 && !(error && *error);
}

/* ---- user-mode networking (QEMU's slirp) ---- */

/* The guest gets slirp's fixed network, set by nic_config (no DHCP client
 * in the guest): its address, the default route through slirp's gateway
 * (which is the host for the guest), slirp's DNS forwarder for
 * resolv.conf. Nothing of the host's own addresses shows. */
static gboolean user_prepare(Net *n, GError **error) {
  g_autoptr(GArray) ports = kv_publish_parse_all((const char *const *)n->s->cfg.publish, error);
  if (!ports)
    return FALSE;
  Iface *f = g_new0(Iface, 1);
  f->addresses = g_ptr_array_new_with_free_func(g_free);
  f->routes = g_ptr_array_new_with_free_func(route_free);
  f->neighbours = g_ptr_array_new_with_free_func(neigh_free);
  f->link = g_strdup("user");
  f->mtu = 1500; /* slirp's */
  g_ptr_array_add(f->addresses, g_strdup(KV_VMM_USER_GUEST_CIDR));
  KvRoute *rt = g_new0(KvRoute, 1);
  rt->dst = g_strdup("0.0.0.0/0");
  rt->gateway = g_strdup(KV_VMM_USER_GATEWAY);
  g_ptr_array_add(f->routes, rt);
  /* A locally administered MAC from the state directory (unique here). */
  guint h = g_str_hash(n->s->p.dir);
  f->mac = g_strdup_printf("52:54:00:%02x:%02x:%02x", (h >> 16) & 0xff, (h >> 8) & 0xff, h & 0xff);
  n->user = f;
  shim_log("network: user mode (slirp), %u published ports", ports->len);
  return TRUE;
}

static gboolean guest_config(Net *n, Iface *f, GError **error);

static gboolean user_attach(Net *n, GError **error) {
  Shim *s = n->s;
  g_autoptr(GArray) ports = kv_publish_parse_all((const char *const *)s->cfg.publish, error);
  if (!ports)
    return FALSE;
  g_autofree KvVmmPortForward *fw = g_new0(KvVmmPortForward, ports->len + 1);
  for (guint i = 0; i < ports->len; i++) {
    KvPublish *p = &g_array_index(ports, KvPublish, i);
    fw[i] = (KvVmmPortForward){
        .udp = p->udp, .address = p->address, .host_port = p->host_port, .port = p->port};
  }
  if (!kv_vmm_attach_user_nic(s->vmm, s->p.domain, n->user->mac, fw, ports->len, error))
    return FALSE;
  return guest_config(n, n->user, error);
}

gboolean net_prepare(Net *n, GError **error) {
  const char *path = n->s->cfg.netns;
  n->known = TRUE;
  if (n->s->cfg.net && !strcmp(n->s->cfg.net, "user"))
    return user_prepare(n, error);
  if (!path)
    return TRUE;
  n->netns = g_strdup(path);
  int fd = netns_open(n, error);
  if (fd < 0)
    return FALSE;
  struct nl_sock *sk = sock_in(fd, path, error);
  close(fd);
  if (!sk)
    return FALSE;
  gboolean ok = scan(n, sk, error);
  nl_socket_free(sk);
  for (guint i = 0; ok && i < n->ifs->len; i++) {
    Iface *f = n->ifs->pdata[i];
    shim_log("network: %s (%s, MTU %u, %u addresses, %u routes, %u neighbours) from %s", f->link,
             f->mac, f->mtu, f->addresses->len, f->routes->len, f->neighbours->len, path);
  }
  return ok;
}

void net_hold(Net *n, int fd) {
  if (n->held >= 0)
    close(n->held);
  n->held = fd;
}

void net_forget(Net *n) {
  g_return_if_fail(n->taps->len == 0);
  g_clear_pointer(&n->netns, g_free);
  g_clear_pointer(&n->user, iface_free);
  g_ptr_array_set_size(n->ifs, 0);
  net_hold(n, -1);
}

/* ---- taps and redirects ---- */

/* A persistent tap in the host namespace (libvirt opens it by name). */
static gboolean tap_make(const char *name, GError **error) {
  if (if_nametoindex(name) != 0) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_EXISTS, "a network interface %s already exists", name);
    return FALSE;
  }
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  struct ifreq ifr = {0};
  g_strlcpy(ifr.ifr_name, name, sizeof ifr.ifr_name);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  gboolean ok = fd >= 0 && ioctl(fd, TUNSETIFF, &ifr) == 0 && ioctl(fd, TUNSETPERSIST, 1) == 0;
  if (!ok)
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "cannot create tap %s: %s", name,
                g_strerror(errno));
  if (fd >= 0)
    close(fd);
  return ok;
}

static int link_index(struct nl_sock *sk, const char *name, gboolean *is_tun) {
  struct rtnl_link *l = NULL;
  if (rtnl_link_get_kernel(sk, 0, name, &l) < 0)
    return 0;
  int ifindex = rtnl_link_get_ifindex(l);
  if (is_tun) {
    const char *type = rtnl_link_get_type(l);
    *is_tun = type && !strcmp(type, "tun");
  }
  rtnl_link_put(l);
  return ifindex;
}

/* Change the link `name`: into the namespace nsfd (>= 0), MTU (non-zero),
 * up. */
static int link_change(struct nl_sock *sk, const char *name, int nsfd, guint mtu, gboolean up) {
  struct rtnl_link *orig = NULL, *change = rtnl_link_alloc();
  int rc = rtnl_link_get_kernel(sk, 0, name, &orig);
  if (rc >= 0) {
    if (nsfd >= 0)
      rtnl_link_set_ns_fd(change, nsfd);
    if (mtu)
      rtnl_link_set_mtu(change, mtu);
    if (up)
      rtnl_link_set_flags(change, IFF_UP);
    rc = rtnl_link_change(sk, orig, change, 0);
  }
  if (orig)
    rtnl_link_put(orig);
  rtnl_link_put(change);
  return rc;
}

static int link_delete(struct nl_sock *sk, int ifindex) {
  struct rtnl_link *l = rtnl_link_alloc();
  rtnl_link_set_ifindex(l, ifindex);
  int rc = rtnl_link_delete(sk, l);
  rtnl_link_put(l);
  return rc;
}

/* The ingress qdisc's handle, ffff:0. libnl's TC_HANDLE(0xffff, 0) shifts
 * a signed int past its range (UBSan says so). */
#define INGRESS_HANDLE 0xffff0000u

static struct rtnl_qdisc *ingress_qdisc(int ifindex) {
  struct rtnl_qdisc *q = rtnl_qdisc_alloc();
  rtnl_tc_set_ifindex(TC_CAST(q), ifindex);
  rtnl_tc_set_parent(TC_CAST(q), TC_H_INGRESS);
  rtnl_tc_set_handle(TC_CAST(q), INGRESS_HANDLE);
  rtnl_tc_set_kind(TC_CAST(q), "ingress");
  return q;
}

static int ingress_add(struct nl_sock *sk, int ifindex) {
  struct rtnl_qdisc *q = ingress_qdisc(ifindex);
  int rc = rtnl_qdisc_add(sk, q, NLM_F_CREATE | NLM_F_EXCL);
  rtnl_qdisc_put(q);
  return rc;
}

static int ingress_delete(struct nl_sock *sk, int ifindex) {
  struct rtnl_qdisc *q = ingress_qdisc(ifindex);
  int rc = rtnl_qdisc_delete(sk, q);
  rtnl_qdisc_put(q);
  return rc;
}

/* tc filter add dev FROM parent ffff: protocol all u32 match u8 0 0
 *   action mirred egress redirect dev TO */
static int redirect_add(struct nl_sock *sk, int from, int to) {
  struct rtnl_cls *c = rtnl_cls_alloc();
  struct rtnl_act *a = rtnl_act_alloc();
  int rc = c && a ? 0 : -NLE_NOMEM;
  if (rc == 0) {
    rtnl_tc_set_ifindex(TC_CAST(c), from);
    rtnl_tc_set_parent(TC_CAST(c), INGRESS_HANDLE);
    rtnl_cls_set_protocol(c, ETH_P_ALL);
    rtnl_cls_set_prio(c, FILTER_PRIO);
    if ((rc = rtnl_tc_set_kind(TC_CAST(c), "u32")) >= 0 &&
        (rc = rtnl_tc_set_kind(TC_CAST(a), "mirred")) >= 0 &&
        (rc = rtnl_u32_add_key_uint8(c, 0, 0, 0, 0)) >= 0 &&
        (rc = rtnl_u32_set_cls_terminal(c)) >= 0 &&
        (rc = rtnl_mirred_set_action(a, TCA_EGRESS_REDIR)) >= 0 &&
        (rc = rtnl_mirred_set_policy(a, TC_ACT_STOLEN)) >= 0 &&
        (rc = rtnl_mirred_set_ifindex(a, (uint32_t)to)) >= 0 &&
        (rc = rtnl_u32_add_action(c, a)) >= 0)
      rc = rtnl_cls_add(sk, c, NLM_F_CREATE | NLM_F_EXCL);
  }
  if (a)
    rtnl_act_put(a);
  if (c)
    rtnl_cls_put(c);
  return rc;
}

/* "kvn" + 6 hex digits of the sandbox's state directory (unique on the
 * host, unlike the id) and try + "t" + the interface's index: at most 15
 * bytes. */
static char *tap_name(Net *n, guint i, guint try) {
  g_autofree char *key = g_strdup_printf("%s#%u", n->s->p.dir, try);
  return g_strdup_printf("kvn%06xt%u", g_str_hash(key) & 0xffffff, i);
}

#define TAP_NAME_TRIES 8

/* Make the tap of f, attach it, move it into the namespace, redirect. */
static gboolean attach_one(Net *n, Iface *f, guint i, int nsfd, struct nl_sock *host,
                           struct nl_sock *ns, GError **error) {
  Shim *s = n->s;
  KvNetTap *t = g_new0(KvNetTap, 1);
  t->link = g_strdup(f->link);
  t->mac = g_strdup(f->mac);
  g_ptr_array_add(n->taps, t);
  for (guint try = 0;; try++) {
    g_free(t->tap);
    t->tap = tap_name(n, i, try);
    if (if_nametoindex(t->tap) != 0 && try + 1 < TAP_NAME_TRIES)
      continue;         /* another sandbox's */
    shim_state_save(s); /* recorded before it exists */
    if (!tap_make(t->tap, error)) {
      /* Not ours: teardown must not touch it. */
      g_ptr_array_remove(n->taps, t);
      shim_state_save(s);
      return FALSE;
    }
    break;
  }
  if (!kv_vmm_attach_nic(s->vmm, s->p.domain, t->tap, t->mac, f->mtu, error))
    return FALSE;
  int rc = link_change(host, t->tap, nsfd, 0, FALSE);
  if (rc < 0)
    return nl_fail(error, rc, "moving tap %s into %s", t->tap, n->netns);
  rc = link_change(ns, t->tap, -1, f->mtu, TRUE);
  if (rc < 0)
    return nl_fail(error, rc, "bringing tap %s up in %s", t->tap, n->netns);
  int tap_ix = link_index(ns, t->tap, NULL), link_ix = link_index(ns, f->link, NULL);
  if (!tap_ix || !link_ix) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_NOT_FOUND, "interface %s is gone from %s",
                tap_ix ? f->link : t->tap, n->netns);
    return FALSE;
  }
  t->qdisc = TRUE;
  shim_state_save(s);
  rc = ingress_add(ns, link_ix);
  if (rc < 0) {
    t->qdisc = FALSE; /* someone else's, or none: not ours to remove */
    shim_state_save(s);
    if (rc == -NLE_EXIST)
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_EXISTS,
                  "interface %s in %s already has an ingress qdisc", f->link, n->netns);
    else
      nl_fail(error, rc, "adding an ingress qdisc to %s in %s", f->link, n->netns);
    return FALSE;
  }
  if ((rc = ingress_add(ns, tap_ix)) < 0)
    return nl_fail(error, rc, "adding an ingress qdisc to tap %s", t->tap);
  if ((rc = redirect_add(ns, link_ix, tap_ix)) < 0)
    return nl_fail(error, rc, "redirecting %s to %s", f->link, t->tap);
  if ((rc = redirect_add(ns, tap_ix, link_ix)) < 0)
    return nl_fail(error, rc, "redirecting %s to %s", t->tap, f->link);
  return TRUE;
}

/* Give the guest's interface (found by MAC) f's configuration. */
static gboolean guest_config(Net *n, Iface *f, GError **error) {
  Shim *s = n->s;
  g_autofree char **addrs = g_new0(char *, f->addresses->len + 1);
  for (guint i = 0; i < f->addresses->len; i++)
    addrs[i] = f->addresses->pdata[i];
  KvNicConfigParams p = {
      .mac = f->mac,
      .mtu = f->mtu,
      .addresses = addrs,
      .routes = f->routes,
      .neighbours = f->neighbours,
  };
  g_autoptr(JsonObject) po = kv_msg_encode(kv_m_nic_config.params, &p);
  g_autoptr(GError) e = NULL;
  g_autoptr(JsonObject) r =
      kv_conn_call_sync(s->agent, kv_m_nic_config.name, po, NIC_CONFIG_TIMEOUT_MS, &e);
  KvNicConfigResult res;
  if (!r) {
    GError *m = shim_agent_error(e, "guest: ", TRUE);
    g_prefix_error(&m, "configuring the guest's %s (%s): ", f->link, f->mac);
    g_propagate_error(error, m);
    return FALSE;
  }
  if (!kv_result_decode(&kv_m_nic_config, r, &res, error))
    return FALSE;
  shim_log("network: guest %s is %s", res.ifname ? res.ifname : "?", f->link);
  kv_msg_clear(kv_m_nic_config.result, &res);
  return TRUE;
}

/* ---- names: what the containers' /etc/resolv.conf and /etc/hosts say ---- */

static gboolean is_loopback(const char *ip) {
  return g_str_has_prefix(ip, "127.") || !strcmp(ip, "::1");
}

/* nameserver, search (or domain) and options of a resolv.conf. A
 * loopback nameserver (a local stub resolver) would be the guest's own:
 * left out. */
static void resolv_read(const char *path, GPtrArray *ns, GPtrArray *search, GPtrArray *opts) {
  g_autofree char *text = NULL;
  gsize len = 0;
  if (!g_file_get_contents(path, &text, &len, NULL) || len > 64 * 1024)
    return;
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  for (char **l = lines; *l; l++) {
    g_auto(GStrv) w = g_strsplit_set(g_strstrip(*l), " \t", -1);
    guint n = 0;
    char *words[8] = {0};
    for (char **p = w; *p && n < G_N_ELEMENTS(words); p++)
      if (**p)
        words[n++] = *p;
    if (n < 2 || words[0][0] == '#' || words[0][0] == ';')
      continue;
    if (!strcmp(words[0], "nameserver")) {
      if (ns->len < 3 && g_hostname_is_ip_address(words[1]) && !is_loopback(words[1]))
        g_ptr_array_add(ns, g_strdup(words[1]));
    } else if (!strcmp(words[0], "search") || !strcmp(words[0], "domain")) {
      g_ptr_array_set_size(search, 0); /* the last one wins, as in libc */
      for (guint i = 1; i < n && search->len < 6; i++)
        g_ptr_array_add(search, g_strdup(words[i]));
    } else if (!strcmp(words[0], "options")) {
      for (guint i = 1; i < n && opts->len < 8; i++)
        g_ptr_array_add(opts, g_strdup(words[i]));
    }
  }
}

/* The resolv.conf of the sandbox's namespace: /etc/netns/NAME/resolv.conf
 * for /run/netns/NAME (as `ip netns exec` does), else the host's. */
static char *resolv_path(Net *n) {
  const char *p = n->netns;
  const char *prefixes[] = {"/run/netns/", "/var/run/netns/"};
  for (gsize i = 0; p && i < G_N_ELEMENTS(prefixes); i++) {
    if (!g_str_has_prefix(p, prefixes[i]))
      continue;
    const char *name = p + strlen(prefixes[i]);
    if (!*name || strchr(name, '/') || !strcmp(name, "..") || !strcmp(name, "."))
      break;
    char *path = g_build_filename("/etc/netns", name, "resolv.conf", NULL);
    if (g_file_test(path, G_FILE_TEST_IS_REGULAR))
      return path;
    g_free(path);
  }
  return g_strdup("/etc/resolv.conf");
}

static char **strv_of(GPtrArray *a) {
  g_ptr_array_add(a, NULL);
  return (char **)g_ptr_array_steal(a, NULL);
}

static gboolean names_send(Net *n, GError **error) {
  Shim *s = n->s;
  g_autoptr(GPtrArray) ns = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) search = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) opts = g_ptr_array_new_with_free_func(g_free);
  g_autofree char *address = NULL;
  Iface *first = n->user ? n->user : n->ifs->len ? n->ifs->pdata[0] : NULL;
  if (first && first->addresses->len) {
    const char *cidr = first->addresses->pdata[0];
    address = g_strndup(cidr, strcspn(cidr, "/"));
  }
  if (n->user) {
    /* slirp's forwarder asks the host's resolvers. */
    g_autoptr(GPtrArray) host_ns = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(ns, g_strdup(KV_VMM_USER_DNS));
    resolv_read("/etc/resolv.conf", host_ns, search, opts);
  } else if (n->netns) {
    g_autofree char *path = resolv_path(n);
    resolv_read(path, ns, search, opts);
  }
  g_auto(GStrv) nsv = strv_of(g_steal_pointer(&ns)), sv = strv_of(g_steal_pointer(&search)),
                ov = strv_of(g_steal_pointer(&opts));
  KvNetNamesParams p = {
      .hostname = s->cfg.id,
      .address = address,
      .nameservers = nsv,
      .search = sv,
      .options = ov,
  };
  g_autoptr(JsonObject) po = kv_msg_encode(kv_m_net_names.params, &p);
  g_autoptr(GError) e = NULL;
  g_autoptr(JsonObject) r =
      kv_conn_call_sync(s->agent, kv_m_net_names.name, po, NIC_CONFIG_TIMEOUT_MS, &e);
  if (!r) {
    GError *m = shim_agent_error(e, "guest: ", TRUE);
    g_prefix_error(&m, "giving the guest its names: ");
    g_propagate_error(error, m);
    return FALSE;
  }
  shim_log("network: names: %s at %s, %u nameservers", p.hostname, address ? address : "-",
           g_strv_length(nsv));
  return TRUE;
}

static gboolean attach(Net *n, GError **error);

gboolean net_attach(Net *n, GError **error) {
  return attach(n, error) && names_send(n, error);
}

static gboolean attach(Net *n, GError **error) {
  if (n->user)
    return user_attach(n, error);
  if (!n->netns)
    return TRUE;
  int nsfd = netns_open(n, error);
  if (nsfd < 0)
    return FALSE;
  struct nl_sock *ns = sock_in(nsfd, n->netns, error), *host = ns ? sock_here(error) : NULL;
  gboolean ok = host != NULL;
  for (guint i = 0; ok && i < n->ifs->len; i++)
    ok = attach_one(n, n->ifs->pdata[i], i, nsfd, host, ns, error);
  close(nsfd);
  if (host)
    nl_socket_free(host);
  if (ns)
    nl_socket_free(ns);
  shim_state_save(n->s);
  for (guint i = 0; ok && i < n->ifs->len; i++)
    ok = guest_config(n, n->ifs->pdata[i], error);
  return ok;
}

/* Remove what the shim made for t: the tap (with its qdisc and filter),
 * here or in the namespace, and the interface's ingress qdisc if ours. */
static void tap_remove(struct nl_sock *host, struct nl_sock *ns, const KvNetTap *t) {
  gboolean tun = FALSE;
  int ix;
  /* Not moved yet (a failure between make and move): still here. */
  if (host && (ix = link_index(host, t->tap, &tun)) && tun)
    link_delete(host, ix);
  if (!ns)
    return;
  if ((ix = link_index(ns, t->tap, &tun)) && tun) {
    int rc = link_delete(ns, ix);
    if (rc < 0)
      shim_log("network teardown: deleting tap %s: %s", t->tap, nl_geterror(rc));
  }
  if (t->qdisc && (ix = link_index(ns, t->link, NULL))) {
    int rc = ingress_delete(ns, ix);
    if (rc < 0 && rc != -NLE_OBJ_NOTFOUND)
      shim_log("network teardown: ingress qdisc of %s: %s", t->link, nl_geterror(rc));
  }
  shim_log("network teardown: tap %s and the redirect of %s removed", t->tap, t->link);
}

void net_teardown(Net *n) {
  if (!n->known) {
    KvShimStateResult st;
    g_autoptr(GError) le = NULL;
    if (shim_state_load(n->s, &st, &le)) {
      net_restore(n, &st);
      kv_msg_clear(kv_m_shim_state.result, &st);
    } else {
      shim_log("network teardown: no state (%s)", le->message);
    }
  }
  if (!n->taps->len)
    return;
  g_autoptr(GError) e = NULL;
  struct nl_sock *host = sock_here(&e);
  int nsfd = n->netns ? netns_open(n, e ? NULL : &e) : -1;
  struct nl_sock *ns = nsfd >= 0 ? sock_in(nsfd, n->netns, &e) : NULL;
  if (e)
    shim_log("network teardown: %s", e->message);
  for (guint i = 0; i < n->taps->len; i++)
    tap_remove(host, ns, n->taps->pdata[i]);
  g_ptr_array_set_size(n->taps, 0);
  if (nsfd >= 0)
    close(nsfd);
  if (ns)
    nl_socket_free(ns);
  if (host)
    nl_socket_free(host);
}

/* ---- hotplug of one interface of the namespace ---- */

gboolean net_add_iface(Net *n, const char *name, char **mac_out, GError **error) {
  if (!n->netns) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID,
                "nic add of interface '%s': the sandbox has no network namespace (--netns)", name);
    return FALSE;
  }
  for (guint i = 0; i < n->taps->len; i++) {
    KvNetTap *t = n->taps->pdata[i];
    if (!g_strcmp0(t->link, name)) {
      g_set_error(error, KV_ERROR_DOMAIN, KV_E_EXISTS,
                  "interface %s of %s already reaches the guest (tap %s)", name, n->netns, t->tap);
      return FALSE;
    }
  }
  int nsfd = netns_open(n, error);
  if (nsfd < 0)
    return FALSE;
  struct nl_sock *ns = sock_in(nsfd, n->netns, error), *host = ns ? sock_here(error) : NULL;
  gboolean ok = FALSE;
  Iface *f = NULL;
  GError *se = NULL; /* not g_autoptr: the gotos below jump past its scope */
  if (!host)
    goto out;
  if (!link_index(ns, name, NULL)) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_NOT_FOUND, "network namespace %s has no interface %s",
                n->netns, name);
    goto out;
  }
  /* scan() reads every interface; keep this one. */
  GPtrArray *all = n->ifs;
  n->ifs = g_ptr_array_new_with_free_func(iface_free);
  scan(n, ns, &se);
  g_clear_error(&se);
  for (guint i = 0; i < n->ifs->len && !f; i++)
    if (!strcmp(((Iface *)n->ifs->pdata[i])->link, name))
      f = g_ptr_array_steal_index(n->ifs, i);
  g_ptr_array_unref(n->ifs);
  n->ifs = all;
  if (!f) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_INVALID,
                "interface %s of %s has no address (or is a tap or loopback)", name, n->netns);
    goto out;
  }
  guint before = n->taps->len;
  ok = attach_one(n, f, n->taps->len, nsfd, host, ns, error);
  shim_state_save(n->s);
  if (ok)
    ok = guest_config(n, f, error);
  if (!ok && n->taps->len > before) {
    /* Nothing of a failed add stays: its tap and redirects go now. */
    KvNetTap *t = g_ptr_array_steal_index(n->taps, n->taps->len - 1);
    g_autoptr(GError) de = NULL;
    kv_vmm_detach_nic(n->s->vmm, n->s->p.domain, t->mac, &de);
    tap_remove(host, ns, t);
    tap_free(t);
    shim_state_save(n->s);
  }
  if (ok) {
    *mac_out = g_strdup(f->mac);
    g_ptr_array_add(n->ifs, g_steal_pointer(&f));
  }
out:
  if (f)
    iface_free(f);
  close(nsfd);
  if (host)
    nl_socket_free(host);
  if (ns)
    nl_socket_free(ns);
  return ok;
}

gboolean net_owns_mac(Net *n, const char *mac) {
  for (guint i = 0; i < n->taps->len; i++)
    if (!g_ascii_strcasecmp(((KvNetTap *)n->taps->pdata[i])->mac, mac))
      return TRUE;
  return FALSE;
}

void net_remove_mac(Net *n, const char *mac) {
  for (guint i = 0; i < n->taps->len; i++) {
    KvNetTap *t = n->taps->pdata[i];
    if (g_ascii_strcasecmp(t->mac, mac))
      continue;
    g_autoptr(GError) e = NULL;
    struct nl_sock *host = sock_here(&e);
    int nsfd = netns_open(n, e ? NULL : &e);
    struct nl_sock *ns = nsfd >= 0 ? sock_in(nsfd, n->netns, &e) : NULL;
    if (e)
      shim_log("network: removing tap %s: %s", t->tap, e->message);
    tap_remove(host, ns, t);
    for (guint j = 0; j < n->ifs->len; j++)
      if (!strcmp(((Iface *)n->ifs->pdata[j])->link, t->link)) {
        g_ptr_array_remove_index(n->ifs, j);
        break;
      }
    g_ptr_array_remove_index(n->taps, i);
    shim_state_save(n->s);
    if (nsfd >= 0)
      close(nsfd);
    if (ns)
      nl_socket_free(ns);
    if (host)
      nl_socket_free(host);
    return;
  }
}

/* ---- what is no longer in place (for inspect) ---- */

char **net_warnings(Net *n) {
  if (!n->netns || !n->taps->len)
    return NULL;
  GPtrArray *w = g_ptr_array_new();
  g_autoptr(GError) e = NULL;
  int nsfd = netns_open(n, &e);
  struct nl_sock *ns = nsfd >= 0 ? sock_in(nsfd, n->netns, &e) : NULL;
  if (!ns) {
    g_ptr_array_add(w, g_strdup_printf("the sandbox's network namespace cannot be used any more "
                                       "(%s): the guest's interfaces have no way out",
                                       e ? e->message : n->netns));
  } else {
    for (guint i = 0; i < n->taps->len; i++) {
      const KvNetTap *t = n->taps->pdata[i];
      gboolean tun = FALSE;
      if (!link_index(ns, t->link, NULL))
        g_ptr_array_add(w, g_strdup_printf("interface %s of network namespace %s is gone: the "
                                           "guest's interface with MAC %s is cut off (its tap %s "
                                           "is removed with the sandbox)",
                                           t->link, n->netns, t->mac ? t->mac : "?", t->tap));
      else if (!link_index(ns, t->tap, &tun) || !tun)
        g_ptr_array_add(w, g_strdup_printf("tap %s of interface %s (network namespace %s) is gone: "
                                           "the guest's interface with MAC %s is cut off",
                                           t->tap, t->link, n->netns, t->mac ? t->mac : "?"));
    }
  }
  if (ns)
    nl_socket_free(ns);
  if (nsfd >= 0)
    close(nsfd);
  if (!w->len) {
    g_ptr_array_free(w, TRUE);
    return NULL;
  }
  g_ptr_array_add(w, NULL);
  return (char **)g_ptr_array_free(w, FALSE);
}

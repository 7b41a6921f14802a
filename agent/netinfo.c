/* agent/netinfo.c: the guest's interfaces, addresses and routes, as its
 * kernel has them, through libnl's caches. */
#include "netinfo.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <string.h>

#ifndef IFF_LOWER_UP
#define IFF_LOWER_UP 0x10000 /* linux/if.h, which clashes with net/if.h */
#endif

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

static void route_free(gpointer p) {
  KvNetRouteInfo *r = p;
  g_free(r->dst);
  g_free(r->gateway);
  g_free(r->dev);
  g_free(r);
}

gboolean agent_m_net_info(AgentCall *call, const KvEmpty *params, KvNetInfoResult *r,
                          GError **error) {
  (void)call;
  (void)params;
  struct nl_sock *sk = nl_socket_alloc();
  struct nl_cache *links = NULL, *addrs = NULL, *routes = NULL;
  int rc = sk ? nl_connect(sk, NETLINK_ROUTE) : -NLE_NOMEM;
  if (rc >= 0 && (rc = rtnl_link_alloc_cache(sk, AF_UNSPEC, &links)) >= 0 &&
      (rc = rtnl_addr_alloc_cache(sk, &addrs)) >= 0)
    rc = rtnl_route_alloc_cache(sk, AF_UNSPEC, 0, &routes);
  if (rc < 0) {
    g_set_error(error, KV_ERROR_DOMAIN, KV_E_IO, "net_info: netlink: %s", nl_geterror(rc));
    goto out;
  }
  /* No free functions: the dispatcher clears the result by its table. */
  r->interfaces = g_ptr_array_new();
  r->routes = g_ptr_array_new();
  for (struct nl_object *o = nl_cache_get_first(links); o; o = nl_cache_get_next(o)) {
    struct rtnl_link *l = (struct rtnl_link *)o;
    int ix = rtnl_link_get_ifindex(l);
    KvNetIfaceInfo *i = g_new0(KvNetIfaceInfo, 1);
    i->name = g_strdup(rtnl_link_get_name(l));
    struct nl_addr *ll = rtnl_link_get_addr(l);
    if (ll && nl_addr_get_len(ll) == 6) {
      char buf[32];
      i->mac = g_ascii_strdown(nl_addr2str(ll, buf, sizeof buf), -1);
    }
    i->mtu = rtnl_link_get_mtu(l);
    unsigned flags = rtnl_link_get_flags(l);
    i->state = g_strdup(flags & IFF_UP ? "up" : "down");
    i->carrier = (flags & IFF_LOWER_UP) != 0;
    g_autoptr(GPtrArray) a = g_ptr_array_new();
    for (struct nl_object *ao = nl_cache_get_first(addrs); ao; ao = nl_cache_get_next(ao)) {
      struct rtnl_addr *ad = (struct rtnl_addr *)ao;
      if (rtnl_addr_get_ifindex(ad) != ix)
        continue;
      g_autofree char *ip = addr_str(rtnl_addr_get_local(ad), FALSE);
      if (ip)
        g_ptr_array_add(a, g_strdup_printf("%s/%d", ip, rtnl_addr_get_prefixlen(ad)));
    }
    g_ptr_array_add(a, NULL);
    i->addresses = (char **)g_ptr_array_steal(a, NULL);
    g_ptr_array_add(r->interfaces, i);
  }
  for (struct nl_object *o = nl_cache_get_first(routes); o; o = nl_cache_get_next(o)) {
    struct rtnl_route *rt = (struct rtnl_route *)o;
    if (rtnl_route_get_table(rt) != RT_TABLE_MAIN || rtnl_route_get_nnexthops(rt) < 1)
      continue;
    struct rtnl_nexthop *nh = rtnl_route_nexthop_n(rt, 0);
    KvNetRouteInfo *ri = g_new0(KvNetRouteInfo, 1);
    ri->dst = addr_str(rtnl_route_get_dst(rt), TRUE);
    struct nl_addr *gw = rtnl_route_nh_get_gateway(nh);
    ri->gateway = gw ? addr_str(gw, FALSE) : NULL;
    char name[IF_NAMESIZE];
    if (if_indextoname((unsigned)rtnl_route_nh_get_ifindex(nh), name))
      ri->dev = g_strdup(name);
    ri->metric = rtnl_route_get_priority(rt);
    if (!ri->dst) {
      route_free(ri);
      continue;
    }
    g_ptr_array_add(r->routes, ri);
  }
out:
  if (links)
    nl_cache_free(links);
  if (addrs)
    nl_cache_free(addrs);
  if (routes)
    nl_cache_free(routes);
  if (sk)
    nl_socket_free(sk);
  return rc >= 0;
}

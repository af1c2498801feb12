/* The DPDK headers this crate binds, plus the shim's own declarations.
 *
 * DPDK implements its hot functions (rx/tx burst, mbuf alloc/free and
 * headroom operations, ring enqueue/dequeue, lcore id, rte_errno) as
 * `static inline` in its headers, so they have no symbol to link against.
 * Each shim_* function below is an exported wrapper around one of them,
 * compiled by build.rs with the flags pkg-config gives for libdpdk. */
#ifndef GW_DPDK_SHIM_H
#define GW_DPDK_SHIM_H

#include <rte_config.h>
#include <rte_common.h>
#include <rte_version.h>
#include <rte_errno.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_memory.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_ring.h>
#include <rte_eth_ring.h>

/* errno of the last failing DPDK call on this thread (a per-lcore TLS var). */
int shim_rte_errno(void);
unsigned shim_rte_lcore_id(void);
uint64_t shim_rte_rdtsc(void);

uint16_t shim_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                               struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t shim_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                               struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

struct rte_mbuf *shim_rte_pktmbuf_alloc(struct rte_mempool *mp);
int shim_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                unsigned count);
void shim_rte_pktmbuf_free(struct rte_mbuf *m);
char *shim_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *shim_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *shim_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int shim_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t shim_rte_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
void shim_rte_pktmbuf_reset(struct rte_mbuf *m);

unsigned shim_rte_ring_enqueue_burst(struct rte_ring *r, void *const *objs,
                                     unsigned n, unsigned *free_space);
unsigned shim_rte_ring_dequeue_burst(struct rte_ring *r, void **objs,
                                     unsigned n, unsigned *available);
unsigned shim_rte_ring_count(const struct rte_ring *r);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * vmm/evloop.h - gmm-vmm's event loop: one thread that waits in epoll on
 * file descriptors (eventfds, ioeventfds, the monitor's sockets, a signalfd)
 * and on timers, and calls each source's handler.
 *
 * Calling contract:
 * - evloop_create() and evloop_destroy() belong to the thread that owns the
 *   loop (gmm-vmm's main thread); evloop_destroy() only after evloop_stop()
 *   or before evloop_start().
 * - evloop_add_fd(), evloop_add_timer(), evloop_timer_set(), evloop_del()
 *   and evloop_call() may be called from any thread, at any time between
 *   create and destroy, also from inside a handler.
 * - Handlers run on the loop thread only, one at a time.  A handler may add
 *   and delete sources, itself included; it must not block for long (it
 *   delays every other source) and must not call evloop_stop().
 * - evloop_del() called from another thread returns only once that source's
 *   handler is not running and will not run again; called from a handler it
 *   takes effect at once (a pending event of the deleted source is dropped).
 *   It never closes the source's fd: the caller owns the fd, and may close
 *   it once evloop_del() has returned.
 * - The loop thread blocks every signal: process-directed ones (SIGTERM,
 *   SIGINT, SIGHUP) go to the main thread's signalfd (vm_wait()).
 * - evloop_call() queues a function to run once on the loop thread; it takes
 *   no lock that a handler holds, so a vCPU thread may call it while a
 *   handler waits for that vCPU.
 */
#ifndef GMM_VMM_EVLOOP_H
#define GMM_VMM_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>

struct evloop;
struct evsource;

/* events: the EPOLLIN/EPOLLOUT/EPOLLHUP/EPOLLERR bits seen; 0 for a timer. */
typedef void (*evloop_fn)(void *opaque, uint32_t events);

/* A new loop, not yet running; 0 or -errno. */
int evloop_create(struct evloop **out);

/* Start the loop thread; 0 or -errno. Starting a running loop does
 * nothing (vm_run() and the monitor may both start it). */
int evloop_start(struct evloop *l);

/* Ask the loop thread to end after its current handler and join it. */
void evloop_stop(struct evloop *l);

/* Free the loop and every source still registered (their fds stay open). */
void evloop_destroy(struct evloop *l);

/*
 * Watch fd for events (EPOLLIN, EPOLLOUT, ...; level-triggered) and call
 * fn(opaque, seen) on the loop thread.  NULL on failure, errno set.
 */
struct evsource *evloop_add_fd(struct evloop *l, int fd, uint32_t events,
			       evloop_fn fn, void *opaque);

/* Change the events a fd source waits for; 0 or -errno. */
int evloop_mod_fd(struct evloop *l, struct evsource *s, uint32_t events);

/*
 * A timer calling fn(opaque, 0) first after first_ns, then every period_ns
 * (0: once).  first_ns 0 creates it disarmed.  NULL on failure, errno set.
 */
struct evsource *evloop_add_timer(struct evloop *l, uint64_t first_ns,
				  uint64_t period_ns, evloop_fn fn,
				  void *opaque);

/* Re-arm (first_ns > 0) or disarm (first_ns 0) a timer; 0 or -errno. */
int evloop_timer_set(struct evloop *l, struct evsource *s, uint64_t first_ns,
		     uint64_t period_ns);

/* Stop watching a source and free it (see the contract above). */
void evloop_del(struct evloop *l, struct evsource *s);

/* Run fn(opaque, 0) once on the loop thread, soon; 0 or -errno. */
int evloop_call(struct evloop *l, evloop_fn fn, void *opaque);

/* Whether the calling thread is the loop thread. */
bool evloop_on_loop_thread(const struct evloop *l);

#endif

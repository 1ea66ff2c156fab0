/* SPDX-License-Identifier: GPL-2.0 */
/* Named network namespaces, compatible with iproute2's "ip netns". */
#ifndef VFEMU_NETNS_H
#define VFEMU_NETNS_H

#define NETNS_RUN_DIR "/run/netns"

/* All return 0 (or an fd) on success and -errno on failure. */
int netns_valid_name(const char *name);          /* 1 if usable as a netns name */
int netns_exists(const char *name);              /* 1 yes, 0 no */
int netns_add(const char *name);                 /* -EEXIST if it exists */
int netns_del(const char *name);                 /* -ENOENT if absent */
int netns_open(const char *name);                /* O_CLOEXEC fd of the netns */
/* Switch the calling thread into netns @name; *saved receives an fd to the
 * netns we came from, to be passed to netns_leave(). */
int netns_enter(const char *name, int *saved);
int netns_leave(int saved);                      /* setns back, closes saved */
/* Run fn(arg) inside netns @name and come back; returns fn's result. */
int netns_run(const char *name, int (*fn)(void *arg), void *arg);
/* The same, with name NULL meaning the caller's netns (no switch). */
int netns_run_in(const char *name, int (*fn)(void *arg), void *arg);

#endif

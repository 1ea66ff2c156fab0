/* SPDX-License-Identifier: GPL-2.0 */
/* Port policy as vf set and status show it (vf.c). */
#ifndef CLAT_VF_H
#define CLAT_VF_H

#include <stddef.h>
#include <stdint.h>

struct json;
struct clat_fn_policy;
void json_policy(struct json *j, const struct clat_fn_policy *p, const char *pf);
const char *link_state_name(uint32_t s);
const char *pf_operstate(const char *pf, char *buf, size_t len);

#endif

/* SPDX-License-Identifier: GPL-2.0 */
/* qemu migrate --recover (qemu_recover.c): after a killed run, exactly one
 * side serves. */
#ifndef CLAT_QEMU_RECOVER_H
#define CLAT_QEMU_RECOVER_H

#include <stdbool.h>

#include "qemu_migrate.h"

struct invocation;
int qm_recover(struct qm *qm, bool have_src, bool have_dst, const struct invocation *inv);

#endif

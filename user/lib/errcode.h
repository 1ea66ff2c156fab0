/* SPDX-License-Identifier: GPL-2.0 */
/* clat's own errno-style codes: returned negated like -errno, so a library
 * function can say "bad input" without knowing the command line. */
#ifndef CLAT_ERRCODE_H
#define CLAT_ERRCODE_H

/* Returned (negated) for bad command-line input; the tools map it to exit
 * code 2.  Never passed to strerror(). */
#define EUSAGE 4096

#endif

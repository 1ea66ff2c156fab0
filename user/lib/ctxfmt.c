// SPDX-License-Identifier: GPL-2.0
#include "ctxfmt.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <string.h>

const char *tcp_state_name(uint8_t state)
{
	static const char *const names[] = {
		[CLAT_TCP_NONE] = "none",
		[CLAT_TCP_SYN_SENT] = "syn-sent",
		[CLAT_TCP_SYN_RECV] = "syn-recv",
		[CLAT_TCP_ESTABLISHED] = "established",
		[CLAT_TCP_FIN_WAIT] = "fin-wait",
		[CLAT_TCP_LAST_ACK] = "last-ack",
		[CLAT_TCP_CLOSED] = "closed",
	};

	return state < sizeof(names) / sizeof(names[0]) ? names[state] : "invalid";
}

const char *slot_state_name(uint64_t state_word)
{
	switch (state_word & CLAT_SLOT_STATE_MASK) {
	case CLAT_SLOT_EMPTY: return "empty";
	case CLAT_SLOT_CLAIMING: return "claiming";
	case CLAT_SLOT_LIVE: return "live";
	case CLAT_SLOT_RELEASED: return "released";
	default: return "invalid";
	}
}

const char *ctx_proto_name(uint8_t proto, char buf[8])
{
	if (proto == IPPROTO_TCP)
		return "tcp";
	if (proto == IPPROTO_UDP)
		return "udp";
	snprintf(buf, 8, "%u", proto);
	return buf;
}

void ctx_format_addr(const uint8_t addr[16], char buf[46])
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (!memcmp(addr, mapped, sizeof(mapped)))
		inet_ntop(AF_INET, addr + 12, buf, 46);
	else
		inet_ntop(AF_INET6, addr, buf, 46);
}

static const char *dir_name(uint8_t dir)
{
	return dir == CLAT_DIR_IN ? "in" : dir == CLAT_DIR_OUT ? "out" : "invalid";
}

void ctx_json_fields(struct json *j, const struct clat_ctx *c)
{
	char vm[46], remote[46], proto[8];

	ctx_format_addr(c->key.vm_addr, vm);
	ctx_format_addr(c->key.remote_addr, remote);
	json_str(j, "state", slot_state_name(c->state_word));
	json_u64(j, "tag", c->state_word >> CLAT_SLOT_TAG_SHIFT);
	json_str(j, "vm_addr", vm);
	json_u64(j, "vm_port", ntohs(c->key.vm_port));
	json_str(j, "remote_addr", remote);
	json_u64(j, "remote_port", ntohs(c->key.remote_port));
	json_str(j, "proto", ctx_proto_name(c->key.proto, proto));
	json_str(j, "tcp_state", tcp_state_name(c->tcp_state));
	json_u64(j, "fin_mask", c->fin_mask);
	json_str(j, "initiator", dir_name(c->initiator));
	json_u64(j, "fn", c->fn);
	json_u64(j, "type", c->type);
	json_u64(j, "rx_queue", c->rx_queue);
	json_u64(j, "seq_next_in", c->seq_next[CLAT_DIR_IN]);
	json_u64(j, "seq_next_out", c->seq_next[CLAT_DIR_OUT]);
	json_u64(j, "ack_last_in", c->ack_last[CLAT_DIR_IN]);
	json_u64(j, "ack_last_out", c->ack_last[CLAT_DIR_OUT]);
	json_u64(j, "packets_in", c->packets[CLAT_DIR_IN]);
	json_u64(j, "packets_out", c->packets[CLAT_DIR_OUT]);
	json_u64(j, "bytes_in", c->bytes[CLAT_DIR_IN]);
	json_u64(j, "bytes_out", c->bytes[CLAT_DIR_OUT]);
	json_u64(j, "window_in", clat_ctx_window(c, CLAT_DIR_IN));
	json_u64(j, "window_out", clat_ctx_window(c, CLAT_DIR_OUT));
	json_u64(j, "first_seen_ns", c->first_seen_ns);
	json_u64(j, "last_seen_ns", c->last_seen_ns);
}

void ctx_json(struct json *j, const struct clat_ctx *c, uint32_t svc)
{
	json_obj_open(j, NULL);
	json_u64(j, "svc", svc);
	ctx_json_fields(j, c);
	json_obj_close(j);
}

static void print_endpoint(FILE *out, const char *addr, uint16_t port)
{
	fprintf(out, strchr(addr, ':') ? "[%s]:%u" : "%s:%u", addr, port);
}

void ctx_print(FILE *out, const struct clat_ctx *c, uint32_t svc)
{
	char vm[46], remote[46], proto[8];

	ctx_format_addr(c->key.vm_addr, vm);
	ctx_format_addr(c->key.remote_addr, remote);
	fprintf(out, "svc %u %s %s ", svc, slot_state_name(c->state_word),
		ctx_proto_name(c->key.proto, proto));
	print_endpoint(out, vm, ntohs(c->key.vm_port));
	fputs(" <-> ", out);
	print_endpoint(out, remote, ntohs(c->key.remote_port));
	fprintf(out, " %s fn %u in %" PRIu64 "/%" PRIu64 " out %" PRIu64 "/%" PRIu64
		" first_seen_ns %" PRIu64 " last_seen_ns %" PRIu64 "\n",
		tcp_state_name(c->tcp_state), c->fn, (uint64_t)c->packets[CLAT_DIR_IN],
		(uint64_t)c->bytes[CLAT_DIR_IN], (uint64_t)c->packets[CLAT_DIR_OUT],
		(uint64_t)c->bytes[CLAT_DIR_OUT], (uint64_t)c->first_seen_ns,
		(uint64_t)c->last_seen_ns);
}

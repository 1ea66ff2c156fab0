# clat: non-recursive build.  Output goes to .output/ (.output/san/ with
# SANITIZE=1, so sanitized and plain objects never mix); `make V=1` shows commands.
.DELETE_ON_ERROR:
.SECONDARY:
.DEFAULT_GOAL := all

BASE_OUTPUT := .output
SANITIZE  ?=
OUTPUT    := $(if $(filter 1,$(SANITIZE)),$(BASE_OUTPUT)/san,$(BASE_OUTPUT))
CLANG     ?= clang
CC        ?= gcc
BPFTOOL   ?= bpftool
PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    := $(PREFIX)/bin
UNITDIR   := $(PREFIX)/lib/systemd/system
MAN8DIR   := $(PREFIX)/share/man/man8

ARCH      := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')
CFLAGS    ?= -O2 -g
CFLAGS    += -std=gnu11 -Wall -Wextra -Werror -Wno-format-truncation -Iinclude -Iuser -Ivf-emu -I$(OUTPUT) -MMD -MP
LDLIBS    := -lbpf -lelf -lz -lmnl
# libvirt and libxml2 are linked into clat-load only.
LIBVIRT_CFLAGS := $(shell pkg-config --cflags libvirt libxml-2.0)
LIBVIRT_LIBS   := $(shell pkg-config --libs libvirt libxml-2.0)
BPF_CFLAGS := -O2 -g -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror -Iinclude -I$(OUTPUT) -MMD -MP

ifeq ($(SANITIZE),1)
# No recovery: the first UB report ends the program, so a test sees it fail.
CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=all
# Files every UBSan report where selftests/run.sh finds it (user/san_hook.c).
SAN_HOOK := $(OUTPUT)/user/san_hook.o
endif

ifeq ($(V),1)
Q :=
msg :=
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

BPF_OBJS    := $(OUTPUT)/clat.bpf.o
SKELS       := $(OUTPUT)/clat.skel.h
VFEMU_LIB   := $(patsubst vf-emu/%.c,$(OUTPUT)/vfemu-obj/%.o,$(filter-out vf-emu/vf-emu.c,$(wildcard vf-emu/*.c)))
# Userspace shared by clat-load, clat-guest and the C tests.
LIB_OBJS    := $(patsubst %,$(OUTPUT)/user/%.o,cmdline parse log common json jsonr maps gmem gphys gtables gbuild ggrow pool owned shadow writeback resync ctxfmt vct lockfile)
LOAD_OBJS   := $(patsubst %,$(OUTPUT)/user/%.o,clat-load attach vf status metrics httpd locate guest gchannel migrate migsrc migdst migemu devstate qmp qemu_migrate qemu_recover port libvirt lvdomain lvwatch lvhook libvirt_migrate miglock upgrade rodata)
GUEST_OBJS  := $(patsubst %,$(OUTPUT)/user/%.o,clat-guest cg_tables cg_build cg_view cg_seed cg_grow gagent)
TEST_PROGS  := $(OUTPUT)/test_verdicts $(OUTPUT)/test_arith $(OUTPUT)/test_jsonr $(OUTPUT)/test_gphys $(OUTPUT)/test_ctx $(OUTPUT)/test_ctx_attack $(OUTPUT)/flowgen \
	       $(OUTPUT)/fuzz_datapath $(OUTPUT)/clat-bench
# Test support shared by the C tests and the benchmark (selftests/lib/).
TESTLIB_OBJS := $(patsubst selftests/lib/%.c,$(OUTPUT)/selftests/lib/%.o,$(wildcard selftests/lib/*.c))
BINS        := $(OUTPUT)/clat-load $(OUTPUT)/vf-emu $(OUTPUT)/clat-guest
# Test-only BPF objects (upgrade.bats) and the UDP/TCP stream checker.
TEST_BPF    := $(patsubst selftests/%.bpf.c,$(OUTPUT)/selftests/%.bpf.o,$(wildcard selftests/*.bpf.c))
TEST_PROGS  += $(OUTPUT)/seqstream $(OUTPUT)/policy_cost

.PHONY: all check demo demo-vm install uninstall clean help deps fuzz bench guest-image
all: $(BINS) $(TEST_PROGS) $(TEST_BPF)

help:
	@echo 'Targets:'
	@echo '  all        build clat-load, clat-guest, vf-emu, the BPF object and test programs (default)'
	@echo '  check      run every test (BPF_PROG_TEST_RUN verdicts, datapath and guest-table fuzzing,'
	@echo '             BATS netns selftests); with SANITIZE=1 on the ASan/UBSan build, failing on any report'
	@echo '  demo       emulated SR-IOV NIC with 4 VFs: attach, ARP/ping/TCP to every VM, stats, teardown'
	@echo '  demo-vm    a real VM (TCG) under two private libvirtds: guest-built tables, TCP from the wire,'
	@echo '             live migration with clat-load libvirt migrate, contexts before/after, downtime by phase'
	@echo '  install    install clat-load, clat-guest, vf-emu and the libvirt qemu hook into $$(DESTDIR)$$(PREFIX),'
	@echo '             systemd units (clat-watch@, clat-gc@ + timer) into $$(PREFIX)/lib/systemd/system and'
	@echo '             man pages clat-load(8), clat-guest(8), vf-emu(8) into $$(PREFIX)/share/man/man8'
	@echo '  uninstall  remove what install put there'
	@echo '  deps       install the Debian packages (scripts/install-deps.sh)'
	@echo '  guest-image  $(BASE_OUTPUT)/guest/initrd.gz + vmlinuz for the real-VM tests: busybox, virtio'
	@echo '             modules and a static clat-guest (kernel from scripts/guest-kernel.sh, GUEST_KERNEL_DIR)'
	@echo '  clean      remove $(BASE_OUTPUT)/ (with the sanitized build in $(BASE_OUTPUT)/san/)'
	@echo '  bench      benchmarks vs peer designs: $(OUTPUT)/bench/results.json, plots, tables'
	@echo '             (QUICK=1: the reduced smoke run; see docs/PERFORMANCE.md)'
	@echo '  fuzz       libFuzzer over gtables_load for $$(FUZZ_SECONDS) s (default 60): corpus in'
	@echo '             $(BASE_OUTPUT)/fuzz-corpus, crashes in $(BASE_OUTPUT)/fuzz-artifacts (needs libclang-rt-14-dev)'
	@echo 'Variables: V=1 (verbose), SANITIZE=1 (ASan+UBSan userspace), FUZZ_SECONDS, QUICK, PREFIX, DESTDIR'

$(sort $(BASE_OUTPUT) $(OUTPUT)) $(OUTPUT)/user $(OUTPUT)/vfemu-obj $(OUTPUT)/selftests:
	$(Q)mkdir -p $@

$(OUTPUT)/vmlinux.h: | $(OUTPUT)
	$(call msg,GEN,$@)
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@

$(OUTPUT)/%.bpf.o: bpf/%.bpf.c $(OUTPUT)/vmlinux.h | $(OUTPUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(OUTPUT)/%.skel.h: $(OUTPUT)/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $(basename $(basename $(notdir $<))) > $@

$(OUTPUT)/selftests/%.bpf.o: selftests/%.bpf.c $(OUTPUT)/vmlinux.h | $(OUTPUT)/selftests
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

# Objects that include a skeleton must wait for it to exist.
$(OUTPUT)/user/%.o: user/%.c $(SKELS) | $(OUTPUT)/user
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(patsubst %,$(OUTPUT)/user/%.o,libvirt lvdomain lvwatch lvhook libvirt_migrate): CFLAGS += $(LIBVIRT_CFLAGS)

$(OUTPUT)/vfemu-obj/%.o: vf-emu/%.c | $(OUTPUT)/vfemu-obj
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(OUTPUT)/selftests/%.o: selftests/%.c $(SKELS) | $(OUTPUT)/selftests
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(OUTPUT)/clat-load: $(LOAD_OBJS) $(LIB_OBJS) $(VFEMU_LIB)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) $(LIBVIRT_LIBS) -o $@

$(OUTPUT)/clat-guest: $(GUEST_OBJS) $(LIB_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# vf-emu shares the command engine (cmdline, parse, log) and the JSON writer.
$(OUTPUT)/vf-emu: $(OUTPUT)/vfemu-obj/vf-emu.o $(VFEMU_LIB) $(patsubst %,$(OUTPUT)/user/%.o,cmdline parse log json)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(OUTPUT)/test_%: $(OUTPUT)/selftests/test_%.o $(TESTLIB_OBJS) $(LIB_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -lpthread -o $@

# flowgen: drives a pinned, live program with named frames (selftests).
$(OUTPUT)/flowgen: $(OUTPUT)/selftests/flowgen.o $(TESTLIB_OBJS) $(LIB_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# policy_cost: ns per frame of the dispatch path, with and without port policy.
$(OUTPUT)/policy_cost: $(OUTPUT)/selftests/policy_cost.o $(TESTLIB_OBJS) $(LIB_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(OUTPUT)/seqstream: $(OUTPUT)/selftests/seqstream.o
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ -o $@

# fuzz_datapath: random and mutated frames through BPF_PROG_TEST_RUN.
$(OUTPUT)/fuzz_datapath: $(OUTPUT)/selftests/fuzz_datapath.o $(OUTPUT)/selftests/dp_frames.o $(OUTPUT)/selftests/dp_oracle.o $(TESTLIB_OBJS) $(LIB_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Fuzzing the guest-table validator: clang + libFuzzer, ASan and UBSan.  Only
# the skeleton-free guest-table code is linked in.  Always sanitized, so always
# under $(BASE_OUTPUT)/, whatever SANITIZE says.
FUZZ_SECONDS ?= 60
comma        := ,
FUZZ_CFLAGS  := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-fno-omit-frame-pointer -std=gnu11 -Wall -Wextra -Iinclude -Iuser
FUZZ_LIB     := user/gtables.c user/gmem.c user/gphys.c user/gbuild.c user/parse.c user/log.c

$(BASE_OUTPUT)/fuzz_gtables: selftests/fuzz_gtables.c $(FUZZ_LIB) user/gtables.h user/gbuild.h include/clat_abi.h | $(BASE_OUTPUT)
	$(call msg,FUZZ-CC,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) selftests/fuzz_gtables.c $(FUZZ_LIB) -o $@

$(BASE_OUTPUT)/fuzz_seeds: selftests/fuzz_seeds.c $(FUZZ_LIB) user/gtables.h user/gbuild.h include/clat_abi.h | $(BASE_OUTPUT)
	$(call msg,FUZZ-CC,$@)
	$(Q)$(CLANG) $(subst fuzzer$(comma),,$(FUZZ_CFLAGS)) selftests/fuzz_seeds.c $(FUZZ_LIB) -o $@

fuzz: $(BASE_OUTPUT)/fuzz_gtables $(BASE_OUTPUT)/fuzz_seeds
	$(Q)mkdir -p $(BASE_OUTPUT)/fuzz-corpus $(BASE_OUTPUT)/fuzz-artifacts
	$(Q)$(BASE_OUTPUT)/fuzz_seeds $(BASE_OUTPUT)/fuzz-corpus
	$(Q)if ls selftests/fuzz-regressions/* >/dev/null 2>&1; then \
		$(BASE_OUTPUT)/fuzz_gtables -runs=0 selftests/fuzz-regressions/*; fi
	$(Q)$(BASE_OUTPUT)/fuzz_gtables -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix=$(BASE_OUTPUT)/fuzz-artifacts/ $(BASE_OUTPUT)/fuzz-corpus

# ---- the real-VM tests' guest: kernel + initramfs in $(BASE_OUTPUT)/guest
# clat-guest runs in an initramfs without a libc, so it is linked statically
# from its own objects: the same list as the host clat-guest, built without
# sanitizers (a static binary cannot carry ASan's runtime), so SANITIZE=1
# builds the same guest.
GUEST_KERNEL_DIR ?= /var/lib/clat/guest-kernel
GUEST_DIR    := $(BASE_OUTPUT)/guest
GUEST_CFLAGS := $(filter-out -fsanitize=% -fno-sanitize-recover=%,$(CFLAGS))
GUEST_SOBJS  := $(patsubst $(OUTPUT)/user/%,$(GUEST_DIR)/obj/%,$(GUEST_OBJS) $(LIB_OBJS))
GUEST_LIBS   := -lbpf -lelf -lz

$(GUEST_DIR) $(GUEST_DIR)/obj:
	$(Q)mkdir -p $@

$(GUEST_DIR)/obj/%.o: user/%.c $(SKELS) | $(GUEST_DIR)/obj
	$(call msg,CC,$@)
	$(Q)$(CC) $(GUEST_CFLAGS) -c $< -o $@

$(GUEST_DIR)/clat-guest: $(GUEST_SOBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) -static $^ $(GUEST_LIBS) -o $@

$(GUEST_DIR)/initrd.gz: $(GUEST_DIR)/clat-guest guest/init scripts/guest-image.sh \
		$(wildcard $(GUEST_KERNEL_DIR)/boot/vmlinuz-*) | $(GUEST_DIR)
	$(call msg,GEN,$@)
	$(Q)scripts/guest-image.sh $(GUEST_DIR) $(GUEST_DIR)/clat-guest $(GUEST_KERNEL_DIR) guest/init

guest-image: $(GUEST_DIR)/initrd.gz

# The real-VM tests (selftests/vm.bats) need the image; without a guest
# kernel on this machine they skip, so check does not build it then.
CHECK_GUEST := $(if $(wildcard $(GUEST_KERNEL_DIR)/boot/vmlinuz-*),guest-image)

# run.sh and the BATS tests find the binaries through CLAT_BIN_DIR.
check: all $(CHECK_GUEST)
	$(Q)CLAT_BIN_DIR=$(abspath $(OUTPUT)) CLAT_GUEST_DIR=$(abspath $(GUEST_DIR)) \
		CLAT_SANITIZE=$(SANITIZE) selftests/run.sh

demo: all
	$(Q)CLAT_BIN_DIR=$(abspath $(OUTPUT)) scripts/demo.sh

demo-vm: all $(CHECK_GUEST)
	$(Q)CLAT_BIN_DIR=$(abspath $(OUTPUT)) CLAT_GUEST_DIR=$(abspath $(GUEST_DIR)) scripts/demo-vm.sh

deps:
	$(Q)scripts/install-deps.sh

# systemd units name the installed binaries: @BINDIR@ becomes $(BINDIR).
UNITS := $(wildcard systemd/*.service systemd/*.timer)
MANS  := $(wildcard man/*.8)

install: $(BINS)
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 $(BINS) $(DESTDIR)$(BINDIR)/
	install -D -m 0755 scripts/libvirt-qemu-hook $(DESTDIR)$(PREFIX)/share/clat/libvirt-qemu-hook
	install -d $(DESTDIR)$(UNITDIR)
	$(Q)for u in $(UNITS); do \
		sed 's|@BINDIR@|$(BINDIR)|g' $$u > $(DESTDIR)$(UNITDIR)/$${u#systemd/} && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$${u#systemd/} || exit 1; done
	install -d $(DESTDIR)$(MAN8DIR)
	install -m 0644 $(MANS) $(DESTDIR)$(MAN8DIR)/

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(BINS)))
	rm -f $(DESTDIR)$(PREFIX)/share/clat/libvirt-qemu-hook
	rm -f $(addprefix $(DESTDIR)$(UNITDIR)/,$(notdir $(UNITS)))
	rm -f $(addprefix $(DESTDIR)$(MAN8DIR)/,$(notdir $(MANS)))

clean:
	rm -rf $(BASE_OUTPUT)

ifeq ($(SANITIZE),1)
$(BINS) $(TEST_PROGS): $(SAN_HOOK)
endif

# ---- benchmarks (bench/): driver + its own BPF programs, run by bench/run.sh
BENCH_OBJS := $(patsubst bench/%.c,$(OUTPUT)/bench-obj/%.o,$(filter-out %.bpf.c,$(wildcard bench/*.c)))

$(OUTPUT)/%.bpf.o: bench/%.bpf.c $(OUTPUT)/vmlinux.h | $(OUTPUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(OUTPUT)/bench-obj:
	$(Q)mkdir -p $@

$(OUTPUT)/bench-obj/%.o: bench/%.c $(SKELS) $(OUTPUT)/bench.skel.h | $(OUTPUT)/bench-obj
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Ibench -Iselftests -c $< -o $@

$(OUTPUT)/clat-bench: $(BENCH_OBJS) $(TESTLIB_OBJS) $(LIB_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -lm -o $@

bench: $(BINS) $(OUTPUT)/clat-bench
	$(Q)CLAT_BIN_DIR=$(abspath $(OUTPUT)) QUICK=$(QUICK) bench/run.sh

-include $(wildcard $(OUTPUT)/*.d $(OUTPUT)/*/*.d $(OUTPUT)/*/*/*.d $(GUEST_DIR)/obj/*.d)

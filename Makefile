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
CFLAGS    += -std=gnu11 -Wall -Wextra -Werror -Wno-format-truncation -Iinclude -I$(OUTPUT) -MMD -MP
# The layering, enforced by include paths: the library (user/lib) sees only
# itself, so a library file that includes a command-line header fails to
# build; the command-line engine (user/cli) sees the library; each tool
# (user/clat-load, user/clat-guest) sees the library, the engine and itself.
LIB_INC   := -Iuser/lib
CLI_INC   := -Iuser/lib -Iuser/cli
LOAD_INC  := -Iuser/lib -Iuser/cli -Iuser/clat-load -Ivf-emu
GUEST_INC := -Iuser/lib -Iuser/cli -Iuser/clat-guest
LDLIBS    := -lbpf -lelf -lz -lmnl
# libvirt and libxml2 are linked into clat-load only.
LIBVIRT_CFLAGS := $(shell pkg-config --cflags libvirt libxml-2.0)
LIBVIRT_LIBS   := $(shell pkg-config --libs libvirt libxml-2.0)
BPF_CFLAGS := -O2 -g -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror -Iinclude -I$(OUTPUT) -MMD -MP

ifeq ($(SANITIZE),1)
# No recovery: the first UB report ends the program, so a test sees it fail.
CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=all
# Files every UBSan report where selftests/run.sh finds it (user/lib/san_hook.c).
SAN_HOOK := $(OUTPUT)/user/lib/san_hook.o
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
# The library (user/lib): guest tables, the device shadow, the maps, migration
# phases; an archive, so each program links only the members it uses (only
# clat-load pulls in lvdomain and with it libvirt).  san_hook is not part of
# it: SANITIZE=1 links it into every program explicitly.
LIB_SRCS    := $(filter-out user/lib/san_hook.c,$(wildcard user/lib/*.c))
LIB_OBJS    := $(patsubst user/%.c,$(OUTPUT)/user/%.o,$(LIB_SRCS))
LIB         := $(OUTPUT)/libclat.a
# The command-line engine (user/cli) shared by the tools.
CLI_OBJS    := $(patsubst user/%.c,$(OUTPUT)/user/%.o,$(wildcard user/cli/*.c))
LOAD_OBJS   := $(patsubst user/%.c,$(OUTPUT)/user/%.o,$(wildcard user/clat-load/*.c))
GUEST_OBJS  := $(patsubst user/%.c,$(OUTPUT)/user/%.o,$(wildcard user/clat-guest/*.c))
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

$(sort $(BASE_OUTPUT) $(OUTPUT)) $(OUTPUT)/vfemu-obj $(OUTPUT)/selftests:
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

# Objects per source directory, each with its include path (DIR_INC);
# objects that include a skeleton must wait for it to exist.
$(OUTPUT)/user/lib/%.o:        DIR_INC := $(LIB_INC)
$(OUTPUT)/user/cli/%.o:        DIR_INC := $(CLI_INC)
$(OUTPUT)/user/clat-load/%.o:  DIR_INC := $(LOAD_INC)
$(OUTPUT)/user/clat-guest/%.o: DIR_INC := $(GUEST_INC)
$(OUTPUT)/user/%.o: user/%.c $(SKELS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(DIR_INC) -c $< -o $@

# libvirt's headers; lvdomain also reads vf-emu's VF table (vfemu.h).
$(patsubst %,$(OUTPUT)/user/clat-load/%.o,libvirt lvwatch lvhook libvirt_migrate): CFLAGS += $(LIBVIRT_CFLAGS)
$(OUTPUT)/user/lib/lvdomain.o: CFLAGS += $(LIBVIRT_CFLAGS) -Ivf-emu

$(LIB): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

# vf-emu's library (linked into clat-load too) sees clat's library; the
# vf-emu tool also the command-line engine.
$(OUTPUT)/vfemu-obj/%.o: DIR_INC := $(LIB_INC)
$(OUTPUT)/vfemu-obj/vf-emu.o: DIR_INC := $(CLI_INC)
$(OUTPUT)/vfemu-obj/%.o: vf-emu/%.c | $(OUTPUT)/vfemu-obj
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(DIR_INC) -c $< -o $@

# The C tests and their helpers use the library and vf-emu's (tap.h), never
# the command-line engine.
$(OUTPUT)/selftests/%.o: selftests/%.c $(SKELS) | $(OUTPUT)/selftests
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(LIB_INC) -Ivf-emu -c $< -o $@

$(OUTPUT)/clat-load: $(LOAD_OBJS) $(CLI_OBJS) $(VFEMU_LIB) $(LIB)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) $(LIBVIRT_LIBS) -o $@

$(OUTPUT)/clat-guest: $(GUEST_OBJS) $(CLI_OBJS) $(LIB)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# vf-emu shares the command engine (user/cli) and, from the library, the
# parsers, the log and the JSON writer.
$(OUTPUT)/vf-emu: $(OUTPUT)/vfemu-obj/vf-emu.o $(VFEMU_LIB) $(CLI_OBJS) $(LIB)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(OUTPUT)/test_%: $(OUTPUT)/selftests/test_%.o $(TESTLIB_OBJS) $(LIB)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -lpthread -o $@

# flowgen: drives a pinned, live program with named frames (selftests).
$(OUTPUT)/flowgen: $(OUTPUT)/selftests/flowgen.o $(TESTLIB_OBJS) $(LIB)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# policy_cost: ns per frame of the dispatch path, with and without port policy.
$(OUTPUT)/policy_cost: $(OUTPUT)/selftests/policy_cost.o $(TESTLIB_OBJS) $(LIB)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(OUTPUT)/seqstream: $(OUTPUT)/selftests/seqstream.o
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ -o $@

# fuzz_datapath: random and mutated frames through BPF_PROG_TEST_RUN.
$(OUTPUT)/fuzz_datapath: $(OUTPUT)/selftests/fuzz_datapath.o $(OUTPUT)/selftests/dp_frames.o $(OUTPUT)/selftests/dp_oracle.o $(TESTLIB_OBJS) $(LIB)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Fuzzing the guest-table validator: clang + libFuzzer, ASan and UBSan.  Only
# the skeleton-free guest-table code is linked in.  Always sanitized, so always
# under $(BASE_OUTPUT)/, whatever SANITIZE says.
FUZZ_SECONDS ?= 60
comma        := ,
FUZZ_CFLAGS  := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-fno-omit-frame-pointer -std=gnu11 -Wall -Wextra -Iinclude -Iuser/lib
FUZZ_LIB     := $(patsubst %,user/lib/%.c,gtables gentry glookup gmem gphys gbuild glayout gcorrupt parse log)
FUZZ_HDRS    := $(wildcard user/lib/g*.h) include/clat_abi.h

$(BASE_OUTPUT)/fuzz_gtables: selftests/fuzz_gtables.c $(FUZZ_LIB) $(FUZZ_HDRS) | $(BASE_OUTPUT)
	$(call msg,FUZZ-CC,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) selftests/fuzz_gtables.c $(FUZZ_LIB) -o $@

$(BASE_OUTPUT)/fuzz_seeds: selftests/fuzz_seeds.c $(FUZZ_LIB) $(FUZZ_HDRS) | $(BASE_OUTPUT)
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
GUEST_SOBJS  := $(patsubst $(OUTPUT)/user/%,$(GUEST_DIR)/obj/%,$(GUEST_OBJS) $(CLI_OBJS))
GUEST_SLIB   := $(GUEST_DIR)/libclat.a
GUEST_LIBS   := -lbpf -lelf -lz

$(GUEST_DIR):
	$(Q)mkdir -p $@

$(GUEST_DIR)/obj/lib/%.o:        DIR_INC := $(LIB_INC)
$(GUEST_DIR)/obj/cli/%.o:        DIR_INC := $(CLI_INC)
$(GUEST_DIR)/obj/clat-guest/%.o: DIR_INC := $(GUEST_INC)
$(GUEST_DIR)/obj/%.o: user/%.c $(SKELS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(GUEST_CFLAGS) $(DIR_INC) -c $< -o $@

$(GUEST_DIR)/obj/lib/lvdomain.o: GUEST_CFLAGS += $(LIBVIRT_CFLAGS) -Ivf-emu

$(GUEST_SLIB): $(patsubst $(OUTPUT)/user/%,$(GUEST_DIR)/obj/%,$(LIB_OBJS))
	$(call msg,AR,$@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(GUEST_DIR)/clat-guest: $(GUEST_SOBJS) $(GUEST_SLIB)
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
	$(Q)$(CC) $(CFLAGS) $(LIB_INC) -Ivf-emu -Ibench -Iselftests -c $< -o $@

$(OUTPUT)/clat-bench: $(BENCH_OBJS) $(TESTLIB_OBJS) $(LIB)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -lm -o $@

bench: $(BINS) $(OUTPUT)/clat-bench
	$(Q)CLAT_BIN_DIR=$(abspath $(OUTPUT)) QUICK=$(QUICK) bench/run.sh

-include $(wildcard $(OUTPUT)/*.d $(OUTPUT)/*/*.d $(OUTPUT)/*/*/*.d $(GUEST_DIR)/obj/*/*.d)

# spiketalk - one hand-written Makefile.
#
#   make                 build libspiketalk (.a and .so) and the spiketalk tool
#   make test            install what is missing, build, run every test
#   make test SUITE=ring run one suite (SUITE=ring:push_pull for one test)
#   make demo            install what is missing, build, run the demo
#   make bench           every benchmark, tables on stdout
#   make memcheck        the test suites under valgrind: any error or leak fails
#   make memcheck-core   the same for the core suites only (what CI runs)
#   make soak            an hour of conversation in virtual time (spiketalk soak)
#   make SANITIZER=address|undefined test     the same under a sanitizer
#   make V=1 ...         show full command lines
#   make OPTIMIZATION=-O0 ...                 override the optimisation flags
#
# Outputs go to build/ (build-address/, build-undefined/ with a sanitizer), so
# sanitizer and normal builds never mix.

OPTIMIZATION ?= -O2
SANITIZER ?=
CC ?= cc
WERROR ?=
BUILD := build$(if $(SANITIZER),-$(SANITIZER))

# Layers, in dependency order. Each is a folder with one public header.
LAYERS := base audio snn tts pipeline
LIB_SRC := $(foreach l,$(LAYERS),$(wildcard $(l)/*.c))
CLI_SRC := $(wildcard cli/*.c)
TEST_SRC := $(wildcard tests/*.c) docs/example_stage.c

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/obj/%.o)

STATIC_LIB := $(BUILD)/libspiketalk.a
SHARED_LIB := $(BUILD)/libspiketalk.so
CLI_BIN := $(BUILD)/spiketalk
TEST_BIN := $(BUILD)/spiketalk-tests

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS_ALL := -std=c11 -D_GNU_SOURCE -g -fPIC -pthread $(OPTIMIZATION) $(WARN) \
              $(if $(WERROR),-Werror) -MMD -MP -I. -I/usr/include/hdf5/serial $(CFLAGS)
LIBS := -lportaudio -lsamplerate -lsndfile -lasound -ljack \
        -lespeak-ng -lflite_cmu_us_kal16 -lflite_cmu_us_kal -lflite_cmu_us_awb -lflite_cmu_us_rms \
        -lflite_cmu_us_slt -lflite_usenglish -lflite_cmulex -lflite -lzmq -linih -lspeexdsp -lhdf5_serial -lfftw3f -lpthread -lm
LDFLAGS_ALL := -pthread $(LDFLAGS)

ifeq ($(SANITIZER),address)
  CFLAGS_ALL += -fsanitize=address -fno-omit-frame-pointer
  LDFLAGS_ALL += -fsanitize=address
else ifeq ($(SANITIZER),undefined)
  CFLAGS_ALL += -fsanitize=undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
  LDFLAGS_ALL += -fsanitize=undefined
else ifneq ($(SANITIZER),)
  $(error SANITIZER must be 'address' or 'undefined', not '$(SANITIZER)')
endif

ifeq ($(V),1)
  Q :=
  say :=
else
  Q := @
  say = @printf '  %-6s %s\n' $(1) $(2);
endif

.PHONY: all deps test demo bench memcheck clean help
.DEFAULT_GOAL := all

all: deps $(STATIC_LIB) $(SHARED_LIB) $(CLI_BIN)

# Installs the Debian packages the project needs when any is missing (under
# a second when all are present). Set ST_NO_DEPS=1 to skip.
deps:
ifneq ($(ST_NO_DEPS),1)
	$(Q)tools/deps
endif

$(BUILD)/obj/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(CFLAGS_ALL) -c $< -o $@

$(STATIC_LIB): $(LIB_OBJ)
	$(call say,AR,$@)rm -f $@ && ar rcs $@ $^

$(SHARED_LIB): $(LIB_OBJ)
	$(call say,LD,$@)$(CC) -shared -o $@ $^ $(LDFLAGS_ALL) $(LIBS)

$(CLI_BIN): $(CLI_OBJ) $(STATIC_LIB)
	$(call say,LD,$@)$(CC) -o $@ $(CLI_OBJ) $(STATIC_LIB) $(LDFLAGS_ALL) $(LIBS)

$(TEST_BIN): $(TEST_OBJ) $(STATIC_LIB)
	$(call say,LD,$@)$(CC) -o $@ $(TEST_OBJ) $(STATIC_LIB) $(LDFLAGS_ALL) -lcunit $(LIBS)

test: all $(TEST_BIN) $(BUILD)/asr-tool
	$(Q)ST_CLI=$(CLI_BIN) ST_BUILD=$(BUILD) ST_LINK="$(LDFLAGS_ALL) $(LIBS)" $(TEST_BIN) $(SUITE)
	$(Q)$(if $(SUITE)$(SANITIZER),,$(MAKE) --no-print-directory test-python)

# The Python bindings' pytest files (bindings/python/README.md) against this
# build; `make test` runs them after the suites (not with SUITE= or a sanitizer).
.PHONY: test-python
test-python: all
	$(Q)PYTHONDONTWRITEBYTECODE=1 SPIKETALK_LIB=$(abspath $(SHARED_LIB)) ST_CLI=$(abspath $(CLI_BIN)) \
	    /usr/bin/python3 -m pytest -q -p no:cacheprovider bindings/python/tests

demo: all
	$(Q)$(CLI_BIN) demo

# An hour of conversation in virtual time through the agent (docs/RELIABILITY.md):
# memory growth, lost turns, latency drift. Not part of `make test`.
SOAK_MINUTES ?= 60
.PHONY: soak
soak: all
	$(Q)$(CLI_BIN) soak --minutes $(SOAK_MINUTES) --json $(BUILD)/soak.json

# The standard scenario set (docs/SCENARIOS.md): text files, regenerated.
.PHONY: scenarios
scenarios:
	$(Q)/usr/bin/python3 scenarios/make_standard.py --data $(DATA_DIR)

# bench asr reads the held-out speakers' clips from build/asr/test_sc12.tsv,
# which `make asr-data` writes (a few minutes, once) from the shared data.
bench: all
ifneq ($(ST_NO_DEPS),1)
	$(Q)tools/deps bench
endif
	$(Q)if [ ! -f build/asr/test_sc12.tsv ] && [ -d $(DATA_DIR)/speech/speech_commands ]; then \
	    echo "bench: build/asr/test_sc12.tsv is missing: make asr-data writes it (a few minutes, once)"; \
	    $(MAKE) --no-print-directory asr-data ASR_DIR=build/asr; fi
	$(Q)$(CLI_BIN) bench all

# The recognizer's recipe (tools/asr_tool.c, models/README.md): features of
# the shared speech data (AN4's words aligned by pocketsphinx) and synthetic
# words, then training: models/asr.stm, the classifier, is eight LSNN 256
# trained 150 epochs each with SpecAugment, four of them on clips less their
# own mean (--cmn), merged into one (about an hour on this machine's 2
# cores, two members at a time: 15-20 minutes a pair; with ASR_SC_AUG=3 the
# whole target ran in 74 minutes, models/README.md).
ASR_TOOL := $(BUILD)/asr-tool
ASR_DIR ?= build/asr
DATA_DIR ?= ../shared/data
ASR_EPOCHS ?= 150
ASR_HIDDEN ?= 256
ASR_THREADS ?= 2
# Words in context (whole requests, tools/asr_tool.c --requests) and the
# stored streaming rule (asr-tool rule); the streaming variant of
# models/README.md: ASR_REQUESTS=100 ASR_HIDDEN=256 ASR_EPOCHS=70
# ASR_RULE='--on 0.9 --off 0.3 --min 1'.
ASR_REQUESTS ?= 0
ASR_RULE ?=
# ASR_LM='...' (ctc only): the word bigram of the agent's requests and the
# beam search's settings stored in the model (asr-tool lm; snn/asr.h).
ASR_LM ?=
# ASR_PAUSES=P (ASR_CTC=1 only): a share P of the whole requests get a pause
# of 0.15-0.8 s between two words (asr-tool data --pauses).
ASR_PAUSES ?= 0
# ASR_CTC=1: the frame-level recognizer (models/README.md "CTC"): label
# sequences (asr-tool data --ctc), 8 epochs of cross-entropy on the
# words-in-context windows (in $(ASR_DIR)/ce), then CTC from those weights
# (pool "ctc") into $(ASR_DIR)/asr.stm (build/asr-ctc), never models/asr.stm:
# make train-asr ASR_CTC=1 ASR_REQUESTS=100 ASR_HIDDEN=256 ASR_EPOCHS=115
# ASR_RULE='--on 0.4 --off 0.2 --min 1' (~40 min on this machine's 2 cores)
ASR_CTC ?= 0
ifeq ($(ASR_CTC),1)
ASR_DIR := build/asr-ctc
ASR_MODEL ?= $(ASR_DIR)/asr.stm
ASR_DATA_FLAGS := --ctc --pauses $(ASR_PAUSES)
ASR_TRAIN_FLAGS := --loss ctc --lr 1e-3 --warmup 100 --rate-reg 1 --ce-layers --init $(ASR_DIR)/ce/ckpt.stt
ASR_PRETRAIN = mkdir -p $(ASR_DIR)/ce && $(ASR_TOOL) data --data-dir $(DATA_DIR) --out $(ASR_DIR)/ce --configs 100 \
    --aug 1 --seed 2 --requests $(ASR_REQUESTS) --per-config 12 $(ASR_SEED_FLAG) && $(ASR_TOOL) train --dir $(ASR_DIR)/ce \
    --out $(ASR_DIR)/ce/asr.stm --epochs 8 --loss ce_mean --lr 3e-3 --hidden $(ASR_HIDDEN) --threads $(ASR_THREADS) \
    --checkpoint $(ASR_DIR)/ce/ckpt.stt
ASR_AN4_STEP = true
else
ASR_MODEL ?= models/asr.stm
# AN4's words (74 human speakers: digits, yes, no, stop, go, ...) aligned by
# pocketsphinx (asr-tool align), when the shared data has AN4; SpecAugment
# masks on every training step (snn/train.h).
ASR_AN4_STEP = if [ -f $(DATA_DIR)/speech/an4/manifest.tsv ]; then \
    $(ASR_TOOL) align $(DATA_DIR)/speech/an4 $(ASR_DIR)/an4_align.tsv; else rm -f $(ASR_DIR)/an4_align.tsv; \
    echo "asr-data: no AN4 under $(DATA_DIR)/speech/an4: its words are left out"; fi
ASR_DATA_FLAGS = $$([ -f $(ASR_DIR)/an4_align.tsv ] && echo --an4 $(ASR_DIR)/an4_align.tsv)
ASR_MASKS ?= --mask-freq 2:6 --mask-time 2:10
ASR_TRAIN_FLAGS = --loss ce_mean --lr 3e-3 $(ASR_MASKS)
ASR_PRETRAIN = true
endif
# festival's voices: ASR_FESTIVAL more synthetic configurations spoken by
# them (asr-tool data --festival; tools/asr_festival.c)
ASR_FESTIVAL ?= 0
# ASR_SYNTH_SEEDS=1: every synthesis draws libc's rand() from a hash of its
# voice and text (asr-tool data --synth-seeds), so no synthetic word depends
# on what was synthesized before it; models/asr_stream.stm was trained
# before this and its recipe keeps 0 until it is retrained
ASR_SYNTH_SEEDS ?= 1
ASR_SEED_FLAG = $(if $(filter 1,$(ASR_SYNTH_SEEDS)),--synth-seeds)
# ASR_TRIM=P: a share P of the augmented copies (and of the silence class's
# noise clips) cut to their loudest 0.5-0.95 s (asr-tool data --trim;
# models/README.md "Clips cut short")
ASR_TRIM ?= 0.5
# augmented copies of each human and synthetic training clip (asr-tool data --aug)
ASR_AUG ?= 1
# and of each Speech Commands training clip instead (--sc-aug; empty: ASR_AUG)
ASR_SC_AUG ?=
# the classifier is an ensemble: ASR_MEMBERS nets trained from seeds 0, 1, ...
# on the same data, merged into one (asr-tool merge; snn/asr.h st_asr_ensemble)
ASR_MEMBERS ?= 4
# and ASR_CMN_MEMBERS more trained on each clip less its own mean (asr-tool
# train --cmn; seeds 0, 1, ...): the merged model takes both views
ASR_CMN_MEMBERS ?= 4
# members trained at once (one thread each; the results do not depend on
# the threads): two use this machine's 2 cores ~17 % better than one at a
# time on both
ASR_JOBS ?= 2
ASR_MEMBER_THREADS = $(if $(filter 1,$(ASR_JOBS)),$(ASR_THREADS),1)
# every ASR_PROGRESS_S seconds each member's last epoch (loss, accuracy)
ASR_PROGRESS_S ?= 60
.PHONY: asr-data train-asr train-asr-smoke
$(ASR_TOOL): tools/asr_tool.c tools/asr_align.c tools/asr_festival.c tools/asr_tool.h $(STATIC_LIB)
	$(call say,LD,$@)$(CC) $(CFLAGS_ALL) -o $@ tools/asr_tool.c tools/asr_align.c tools/asr_festival.c $(STATIC_LIB) \
	    $(LDFLAGS_ALL) $(LIBS)

asr-data: all $(ASR_TOOL)
	$(Q)mkdir -p $(ASR_DIR) && $(ASR_AN4_STEP)
	$(Q)$(ASR_TOOL) data --data-dir $(DATA_DIR) --out $(ASR_DIR) --configs 100 --aug $(ASR_AUG) --seed 2 \
	    $(if $(ASR_SC_AUG),--sc-aug $(ASR_SC_AUG)) --festival $(ASR_FESTIVAL) \
	    --requests $(ASR_REQUESTS) --per-config 12 $(ASR_SEED_FLAG) \
	    $(if $(filter-out 0,$(ASR_TRIM)),--trim $(ASR_TRIM)) $(ASR_DATA_FLAGS)

train-asr: asr-data
	$(Q)$(ASR_PRETRAIN)
ifeq ($(ASR_CTC),1)
	$(Q)$(ASR_TOOL) train --dir $(ASR_DIR) --out $(ASR_MODEL) --epochs $(ASR_EPOCHS) $(ASR_TRAIN_FLAGS) \
	    --hidden $(ASR_HIDDEN) --threads $(ASR_THREADS) --log $(ASR_DIR)/train.csv
else
	$(Q)rm -f $(ASR_DIR)/member*.log $(ASR_DIR)/cmn*.log; \
	( while sleep $(ASR_PROGRESS_S); do for f in $(ASR_DIR)/member*.log $(ASR_DIR)/cmn*.log; do \
	    [ -f "$$f" ] && e=$$(tr '\r' '\n' < "$$f" | grep -o '^epoch [0-9]*: .*valid loss [0-9.]* acc [0-9.]*' | \
	        tail -1) && [ -n "$$e" ] && echo "train-asr: $$(basename $$f .log) (of $(ASR_EPOCHS) epochs) $$e"; done; done ) & \
	watcher=$$!; \
	{ for s in $$(seq 0 $$(($(ASR_MEMBERS) - 1))); do echo "member$$s --seed $$s"; done; \
	    for s in $$(seq 0 $$(($(ASR_CMN_MEMBERS) - 1))); do echo "cmn$$s --seed $$s --cmn"; done; } | \
	    xargs -P $(ASR_JOBS) -L 1 sh -c 'echo "train-asr: $$0 ($$*, $(ASR_EPOCHS) epochs) -> $(ASR_DIR)/$$0.stm, progress in $(ASR_DIR)/$$0.log"; \
	        $(ASR_TOOL) train --dir $(ASR_DIR) --out $(ASR_DIR)/$$0.stm "$$@" --epochs $(ASR_EPOCHS) $(ASR_TRAIN_FLAGS) \
	            --hidden $(ASR_HIDDEN) --threads $(ASR_MEMBER_THREADS) --log $(ASR_DIR)/$$0.csv > $(ASR_DIR)/$$0.log 2>&1 && \
	        echo "train-asr: $$0 done ($$(grep -o "saved [^(]*(valid acc [0-9.]*)" $(ASR_DIR)/$$0.log | tail -1))" || \
	        { echo "train-asr: $$0 failed; the end of $(ASR_DIR)/$$0.log:"; tail -c 600 $(ASR_DIR)/$$0.log; exit 255; }'; \
	rc=$$?; kill $$watcher 2>/dev/null; exit $$rc
	$(Q)$(ASR_TOOL) merge --out $(ASR_MODEL) $$(for s in $$(seq 0 $$(($(ASR_MEMBERS) - 1))); do \
	    echo $(ASR_DIR)/member$$s.stm; done) $$(for s in $$(seq 0 $$(($(ASR_CMN_MEMBERS) - 1))); do \
	    echo $(ASR_DIR)/cmn$$s.stm; done)
endif
	$(Q)$(if $(ASR_RULE),$(ASR_TOOL) rule --model $(ASR_MODEL) $(ASR_RULE),true)
	$(Q)$(if $(ASR_LM),$(ASR_TOOL) lm --model $(ASR_MODEL) $(ASR_LM),true)

# The agent's streaming recognizer, models/asr_stream.stm (models/README.md
# "asr_stream.stm"): the frame-level recipe above at the shipped settings
# (900 request voices, a quarter of the requests with a pause inside), its
# data and checkpoints in build/asr-stream (~70 min on this machine's 2
# cores). models/asr.stm, the isolated-word classifier, is `make train-asr`.
ASR_STREAM_MODEL ?= models/asr_stream.stm
ASR_STREAM_DIR ?= build/asr-stream
ASR_STREAM_EPOCHS ?= 115
ASR_STREAM_LM := --requests 20000 --per-word 100 --mix 0.9 --seed 1 --alpha 0.5 --beta 2 --margin 0.5 --beam 8
.PHONY: train-asr-stream asr-stream-lm
train-asr-stream:
	$(Q)$(MAKE) --no-print-directory train-asr ASR_CTC=1 ASR_DIR=$(ASR_STREAM_DIR) ASR_MODEL=$(ASR_STREAM_MODEL) \
	    ASR_REQUESTS=900 ASR_PAUSES=0.25 ASR_SYNTH_SEEDS=0 ASR_HIDDEN=256 ASR_EPOCHS=$(ASR_STREAM_EPOCHS) \
	    ASR_RULE='--on 0.4 --off 0.2 --min 1' ASR_LM='$(ASR_STREAM_LM)'
# The last step alone (seconds): the bigram and the beam settings into a
# trained model, as train-asr-stream writes them.
asr-stream-lm: $(ASR_TOOL)
	$(Q)$(ASR_TOOL) lm --model $(ASR_STREAM_MODEL) $(ASR_STREAM_LM)

# The spiking VAD's learned read-out, models/vad.stm (models/README.md
# "vad.stm"): training data from `bench vad --write-train` (mixtures of the
# tune split's speakers and noise clips; the test split is never seen), then
# `spiketalk train` on models/vad_train.ini (frame labels, loss ce_frame).
# Its data, log and checkpoints go to build/vad (the .ini names them).
VAD_MODEL ?= models/vad.stm
.PHONY: train-vad
train-vad: all
	$(Q)mkdir -p build/vad && \
	    $(CLI_BIN) bench vad --data $(DATA_DIR) --split tune --seed 11 --utterances 3200 --noise-minutes 80 \
	        --snr-max 40 --with-espeak --augment-noise --model none --write-train build/vad/train.std \
	        > build/vad/data_train.txt && \
	    $(CLI_BIN) bench vad --data $(DATA_DIR) --split tune --seed 12 --utterances 400 --noise-minutes 10 \
	        --snr-max 40 --model none --write-train build/vad/valid.std > build/vad/data_valid.txt && \
	    $(CLI_BIN) train --config models/vad_train.ini && cp build/vad/vad.stm $(VAD_MODEL)

# The dense peer of the recognizer: a GRU (PyTorch) on the same features,
# data and split (tools/peers/asr_gru.py; models/README.md "The dense peer").
.PHONY: peer-asr-gru
peer-asr-gru: all
	$(Q)/usr/bin/python3 tools/peers/asr_gru.py --data $(DATA_DIR) > $(BUILD)/peer_asr_gru.json && \
	    cat $(BUILD)/peer_asr_gru.json

# A few steps on a few synthetic words: proves the recipe runs (tests/test_asr.c).
train-asr-smoke: all $(ASR_TOOL)
	$(Q)mkdir -p $(BUILD)/asr-smoke && $(ASR_TOOL) data --data-dir /nonexistent --out $(BUILD)/asr-smoke --configs 1 --aug 1 \
	    --festival 1 --requests 1 --per-config 2 && \
	    $(ASR_TOOL) train --dir $(BUILD)/asr-smoke --out $(BUILD)/asr-smoke/asr.stm --max-steps 5 --hidden 32 --threads 1
	$(Q)mkdir -p $(BUILD)/asr-smoke-ctc && $(ASR_TOOL) data --ctc --data-dir /nonexistent --out $(BUILD)/asr-smoke-ctc \
	    --configs 1 --aug 1 --requests 1 --per-config 2 && \
	    $(ASR_TOOL) train --dir $(BUILD)/asr-smoke-ctc --out $(BUILD)/asr-smoke-ctc/asr.stm --loss ctc --max-steps 5 \
	    --hidden 32 --threads 1


# valgrind over the test suites: any memory error, and any leak, fails.
VALGRIND := valgrind --quiet --error-exitcode=1 --leak-check=full \
            --errors-for-leak-kinds=definite,indirect,possible --show-leak-kinds=definite,indirect,possible \
            --suppressions=tools/valgrind.supp --track-origins=yes
memcheck: all $(TEST_BIN) $(BUILD)/asr-tool
	$(Q)ST_MEMCHECK=1 ST_CLI=$(CLI_BIN) ST_BUILD=$(BUILD) ST_LINK="$(LDFLAGS_ALL) $(LIBS)" $(VALGRIND) $(TEST_BIN) $(SUITE)
# The core suites under valgrind, what .ci/run runs (fuzz/README.md, "CI"
# says why not all): engine, model format, wire, pipeline runtime, agent,
# and the fuzz regressions.
MEMCHECK_CORE := snn snn_files wire pipeline agent fuzz_regress
.PHONY: memcheck-core
memcheck-core:
	$(Q)$(MAKE) --no-print-directory memcheck SUITE="$(MEMCHECK_CORE)"

# libFuzzer targets (fuzz/README.md): the library rebuilt with clang-14 under
# ASan and UBSan in build-fuzz/, one binary per fuzz/fuzz_NAME.c.
#   make fuzz              every target for FUZZ_SECONDS (60) each
#   make fuzz-smoke        every target for 10 s (CI, after make test)
#   make fuzz FUZZ=wire    one target
FUZZ_CC ?= clang-14
FUZZ_SECONDS ?= 60
FUZZ_BUILD := build-fuzz
FUZZ_ALL := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ ?= $(FUZZ_ALL)
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fPIC -pthread $(WARN) -MMD -MP -I. \
               -I/usr/include/hdf5/serial $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_LIB := $(FUZZ_BUILD)/libspiketalk.a
FUZZ_BINS := $(FUZZ_ALL:%=$(FUZZ_BUILD)/fuzz_%)
.PHONY: fuzz fuzz-smoke fuzz-build fuzz-corpus
.SECONDARY: $(FUZZ_ALL:%=$(FUZZ_BUILD)/obj/fuzz/fuzz_%.o)
$(FUZZ_BUILD)/obj/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@
$(FUZZ_LIB): $(LIB_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
	$(call say,AR,$@)rm -f $@ && ar rcs $@ $^
$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/obj/fuzz/fuzz_%.o $(FUZZ_LIB)
	$(call say,LD,$@)$(FUZZ_CC) -o $@ $< $(FUZZ_LIB) -pthread $(FUZZ_SAN) -fsanitize=fuzzer $(LIBS)
fuzz-build: deps $(FUZZ_BINS)
fuzz: fuzz-build
	$(Q)fuzz/run $(FUZZ_SECONDS) $(FUZZ)
fuzz-smoke: fuzz-build
	$(Q)fuzz/run 10 $(FUZZ)
# Regenerates the seed corpora in fuzz/corpus/ with the library's own writers.
fuzz-corpus: all
	$(Q)$(CC) $(CFLAGS_ALL) -o $(BUILD)/fuzz-corpus fuzz/corpus.c $(STATIC_LIB) $(LDFLAGS_ALL) $(LIBS)
	$(Q)$(BUILD)/fuzz-corpus fuzz/corpus

clean:
	rm -rf build build-address build-undefined build-fuzz

help:
	@sed -n '2,17p' Makefile | sed 's/^# \{0,1\}//'

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d)
-include $(wildcard $(FUZZ_BUILD)/obj/*/*.d)

# ---- the language model's training (docs/LM.md "Training", "Dialogue and tools") --------
#   make train-lm         the tinyshakespeare figure: SpikeGPT and its dense twin, at most
#                         LM_MINUTES (15) of training each, last 10 % held out
#   make train-dialogue   the agent's dialogue model -> models/dialogue.stnn, then its reply
#                         accuracy on held-out phrasings (models/README.md)
SHARED_TEXT ?= ../shared/data/text
LM_MINUTES ?= 15
DIALOGUE_STEPS ?= 10000
LM_OUT := $(BUILD)/lm

.PHONY: train-lm train-dialogue

train-lm: all
	@mkdir -p $(LM_OUT)
	$(CLI_BIN) lm train --text $(SHARED_TEXT)/tinyshakespeare.txt --minutes $(LM_MINUTES) \
	    --out $(LM_OUT)/shakespeare-spiking.stnn --log $(LM_OUT)/shakespeare-spiking.csv \
	    | tee $(LM_OUT)/shakespeare-spiking.txt
	$(CLI_BIN) lm train --dense --text $(SHARED_TEXT)/tinyshakespeare.txt --minutes $(LM_MINUTES) \
	    --out $(LM_OUT)/shakespeare-dense.stnn --log $(LM_OUT)/shakespeare-dense.csv \
	    | tee $(LM_OUT)/shakespeare-dense.txt
	@printf '\ntinyshakespeare, last 10 %% held out, %s minutes of training each:\n' $(LM_MINUTES)
	@for v in spiking dense; do printf '%-8s ' $$v; \
	    grep -h '^model:\|^trained:\|^held-out' $(LM_OUT)/shakespeare-$$v.txt | \
	    sed 's/ (last 10 %, [0-9]* characters)//' | tr '\n' ' '; echo; done

train-dialogue: all
	@mkdir -p $(LM_OUT) models
	$(CLI_BIN) lm dialogue --out $(LM_OUT)/dialogue.txt --chatterbot $(SHARED_TEXT)/chatterbot_dialogs.txt
	$(CLI_BIN) lm train --text $(LM_OUT)/dialogue.txt --records '\n\n' --agent-only --words 400 \
	    --holdout 0.02 --seq-len 96 --batch 16 --lr 2e-3 --lr-min 1e-4 --steps $(DIALOGUE_STEPS) --init-seed 2 \
	    --out models/dialogue.stnn --log $(LM_OUT)/dialogue.csv
	$(CLI_BIN) lm eval-reply --model models/dialogue.stnn --n 1000

models/dialogue.stnn: | $(CLI_BIN)
	$(MAKE) train-dialogue

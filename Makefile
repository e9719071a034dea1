# Entry points; the build itself is CMake + Ninja.
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 30
FUZZ_RUNS ?= 10000000

.PHONY: setup build demo test sanitize fuzz fuzz-long fuzz-build bench clean

setup:
	@bash scripts/setup.sh

build: setup
	@cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
	@ninja -C build -j $(JOBS)

# The main job on the bundled demo model: evaluate it, quantize it, compare, generate.
demo: build
	@bash scripts/demo.sh

test: build
	@cd build && ctest --output-on-failure -j $(JOBS) --timeout 1200

# The tests again under AddressSanitizer and UndefinedBehaviorSanitizer, without MPI (Open MPI's
# own allocations would trip LeakSanitizer).
sanitize: setup
	@cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTQ_SANITIZE=ON -DTQ_BENCH=OFF -DTQ_MPI=OFF >/dev/null
	@ninja -C build-asan -j $(JOBS)
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS) --timeout 2400

# libFuzzer targets for every parser (fuzz/fuzz_*.cpp) under ASan and UBSan, from the
# committed seed corpus (fuzz/corpus): each for FUZZ_SECONDS (CI), or to FUZZ_RUNS inputs (fuzz-long).
FUZZ_TARGETS = $(patsubst fuzz/%.cpp,%,$(wildcard fuzz/fuzz_*.cpp))

fuzz-build: setup
	@CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTQ_FUZZ=ON -DTQ_BENCH=OFF -DTQ_MPI=OFF >/dev/null
	@ninja -C build-fuzz -j $(JOBS) $(FUZZ_TARGETS)

fuzz: fuzz-build
	@JOBS=$(JOBS) bash scripts/fuzz.sh build-fuzz time $(FUZZ_SECONDS)

fuzz-long: fuzz-build
	@JOBS=$(JOBS) bash scripts/fuzz.sh build-fuzz runs $(FUZZ_RUNS)

bench: build
	@./build/tquant bench

clean:
	rm -rf build build-asan build-fuzz

# hone: the two commands are `make quickstart` and `make test`.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release
PREFIX ?= /usr/local

.PHONY: all deps build hone test test-all quickstart install bench format clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/Makefile: deps CMakeLists.txt
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

# --no-print-directory: the build's own progress lines, without make's directory chatter.
build: deps
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS) -- --no-print-directory

# The hone binary alone: what the quickstart runs (the tests build under `make test`).
hone: deps
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS) --target hone -- --no-print-directory

# Default test run: everything not labelled slow.
test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE slow

test-all: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

quickstart: hone
	bash scripts/quickstart.sh $(BUILD)

# The hone binary into $(PREFIX)/bin (make install PREFIX=$HOME/.local needs no root).
install: hone
	cmake --install $(BUILD) --prefix "$(PREFIX)"

bench: build
	bash bench/run.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD)

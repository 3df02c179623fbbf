# hone: the two commands are `make quickstart` and `make test`.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release
PREFIX ?= /usr/local

.PHONY: all deps browser-deps build hone test test-all quickstart install bench report-screenshot format clean

all: build

deps:
	@bash scripts/install-deps.sh

# Debian's chromium, for the browser test (ctest label "browser"; skipped without it) and
# report-screenshot. Not part of deps: a user building hone does not need a browser.
browser-deps:
	@bash scripts/install-deps.sh --browser

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

# docs/report.png: the report of a quickstart run in headless Chromium (the browser test's script).
report-screenshot: hone
	bash scripts/report-screenshot.sh --train $(BUILD) docs/report.png

bench: build
	bash bench/run.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD)

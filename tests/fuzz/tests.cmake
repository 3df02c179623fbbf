# The fuzz targets in the default test run (included from tests/CMakeLists.txt). They are built by
# clang in a build of their own (<build>/fuzz, an ExternalProject of tests/fuzz/CMakeLists.txt),
# so this build keeps its compiler. Per target, two tests:
#   fuzz.<t>.replay  every file of corpus/<t> and regress/<t>, once (pending/<t> is not replayed:
#                    known crashes whose fixes have not landed yet)
#   fuzz.<t>         libFuzzer for HONE_FUZZ_SECONDS from corpus/<t>
# Without clang and libFuzzer, both report skipped (exit 77), never passed.
set(HONE_FUZZ_SECONDS 10 CACHE STRING "Seconds each fuzz target runs in the default test run")
set(HONE_FUZZ_TARGETS safetensors gguf config tokenizer chat_template jsonl peft recipe checkpoint)
set(fuzz_src ${PROJECT_SOURCE_DIR}/tests/fuzz)
set(fuzz_bin ${PROJECT_BINARY_DIR}/fuzz)

set(HONE_FUZZ_AVAILABLE OFF)
if(HONE_BUILD_FUZZ)
  find_program(HONE_FUZZ_CXX NAMES clang++-14 clang++)
  find_program(HONE_FUZZ_CC NAMES clang-14 clang)
  if(HONE_FUZZ_CXX AND HONE_FUZZ_CC)
    # Can this clang link a libFuzzer + ASan + UBSan binary? (Needs Debian's libclang-rt / libfuzzer.)
    set(probe ${CMAKE_CURRENT_BINARY_DIR}/fuzz_probe)
    file(WRITE ${probe}.cpp "#include <cstddef>\n#include <cstdint>\n"
      "extern \"C\" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n")
    execute_process(COMMAND ${HONE_FUZZ_CXX} -fsanitize=fuzzer,address,undefined ${probe}.cpp
      -o ${probe} RESULT_VARIABLE probe_rc OUTPUT_QUIET ERROR_QUIET)
    if(probe_rc EQUAL 0)
      set(HONE_FUZZ_AVAILABLE ON)
    endif()
  endif()
  if(NOT HONE_FUZZ_AVAILABLE)
    message(STATUS "fuzz targets: clang with libFuzzer not found (scripts/install-deps.sh); "
      "the fuzz tests will report skipped")
  endif()
endif()

if(HONE_FUZZ_AVAILABLE)
  include(ExternalProject)
  ExternalProject_Add(hone_fuzz
    SOURCE_DIR ${fuzz_src}
    BINARY_DIR ${fuzz_bin}
    CMAKE_ARGS -DCMAKE_CXX_COMPILER=${HONE_FUZZ_CXX} -DCMAKE_C_COMPILER=${HONE_FUZZ_CC}
      -DCMAKE_CXX_COMPILER_LAUNCHER=${CMAKE_CXX_COMPILER_LAUNCHER}
      -DCMAKE_C_COMPILER_LAUNCHER=${CMAKE_C_COMPILER_LAUNCHER} -DHONE_NATIVE=${HONE_NATIVE}
    INSTALL_COMMAND ""
    BUILD_ALWAYS ON)  # its own make decides what is out of date
endif()

foreach(t ${HONE_FUZZ_TARGETS})
  add_test(NAME fuzz.${t}.replay COMMAND bash ${fuzz_src}/run.sh replay ${fuzz_bin}/fuzz_${t}
    ${fuzz_src}/corpus/${t} ${fuzz_src}/regress/${t})
  add_test(NAME fuzz.${t} COMMAND bash ${fuzz_src}/run.sh fuzz ${fuzz_bin}/fuzz_${t}
    ${HONE_FUZZ_SECONDS} ${fuzz_bin}/work/${t} ${fuzz_src}/corpus/${t} ${fuzz_src}/regress/${t})
  set_tests_properties(fuzz.${t}.replay fuzz.${t} PROPERTIES SKIP_RETURN_CODE 77 LABELS fuzz
    ENVIRONMENT "HONE_FUZZ_EXPECTED=$<BOOL:${HONE_FUZZ_AVAILABLE}>")
  # Bounded: the run itself, plus one input's -timeout, plus start-up.
  set_tests_properties(fuzz.${t} PROPERTIES TIMEOUT 120)
endforeach()

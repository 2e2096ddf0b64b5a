# Locates the third-party dependencies of the MLIR-free targets and exposes
# them as imported targets:
#   ds::flatbuffers  ds::cli11  ds::httplib  ds::json  ds::pcre2  ds::utf8proc
# On the GPU machine the header-only ones come from DS_DEPS_DIR/include.

set(_ds_hint_paths "")
if(DS_DEPS_DIR)
  list(APPEND _ds_hint_paths ${DS_DEPS_DIR}/include)
endif()

function(_ds_header_lib target header)
  find_path(_inc_${target} ${header} HINTS ${_ds_hint_paths})
  if(NOT _inc_${target})
    message(FATAL_ERROR "dependency header '${header}' not found "
      "(install the Debian -dev package or set DS_DEPS_DIR)")
  endif()
  add_library(ds_dep_${target} INTERFACE)
  target_include_directories(ds_dep_${target} SYSTEM INTERFACE ${_inc_${target}})
  add_library(ds::${target} ALIAS ds_dep_${target})
endfunction()

_ds_header_lib(flatbuffers flatbuffers/flatbuffers.h)
_ds_header_lib(cli11 CLI/CLI.hpp)
_ds_header_lib(httplib httplib.h)
_ds_header_lib(json nlohmann/json.hpp)

# Debian's libcpp-httplib-dev is a split build: httplib.h only declares, and
# libcpp-httplib.so implements it, compiled with OpenSSL/zlib/brotli support.
# The header's class layouts depend on those macros, so they must match the
# library's. A single-file (header-only) httplib.h needs neither.
file(STRINGS ${_inc_httplib}/httplib.h _ds_httplib_impl REGEX "^inline void ClientImpl::stop" LIMIT_COUNT 1)
if(NOT _ds_httplib_impl)
  find_library(DS_HTTPLIB_LIBRARY cpp-httplib HINTS ${DS_DEPS_DIR}/lib)
  if(NOT DS_HTTPLIB_LIBRARY)
    message(WARNING "${_inc_httplib}/httplib.h is a split (declarations-only) header "
      "but libcpp-httplib was not found: targets using ds::httplib will not link")
  else()
    target_link_libraries(ds_dep_httplib INTERFACE ${DS_HTTPLIB_LIBRARY} Threads::Threads)
    target_compile_definitions(ds_dep_httplib INTERFACE
      CPPHTTPLIB_OPENSSL_SUPPORT CPPHTTPLIB_ZLIB_SUPPORT CPPHTTPLIB_BROTLI_SUPPORT)
  endif()
endif()

# flatc generates the plan header. On machines without flatc (the GPU
# machine) a header generated elsewhere is taken from DS_DEPS_DIR/gen.
find_program(DS_FLATC flatc HINTS ${DS_DEPS_DIR}/bin)

find_package(PkgConfig QUIET)
find_path(PCRE2_INCLUDE_DIR pcre2.h HINTS ${_ds_hint_paths})
find_library(PCRE2_LIBRARY NAMES pcre2-8 libpcre2-8.so.0 HINTS ${DS_DEPS_DIR}/lib)
if(NOT PCRE2_INCLUDE_DIR OR NOT PCRE2_LIBRARY)
  message(FATAL_ERROR "PCRE2 (libpcre2-dev) not found")
endif()
add_library(ds_dep_pcre2 INTERFACE)
target_include_directories(ds_dep_pcre2 SYSTEM INTERFACE ${PCRE2_INCLUDE_DIR})
target_link_libraries(ds_dep_pcre2 INTERFACE ${PCRE2_LIBRARY})
target_compile_definitions(ds_dep_pcre2 INTERFACE PCRE2_CODE_UNIT_WIDTH=8)
add_library(ds::pcre2 ALIAS ds_dep_pcre2)

find_path(UTF8PROC_INCLUDE_DIR utf8proc.h HINTS ${_ds_hint_paths})
find_library(UTF8PROC_LIBRARY NAMES utf8proc libutf8proc.so.2 libutf8proc.so.3 HINTS ${DS_DEPS_DIR}/lib)
if(NOT UTF8PROC_INCLUDE_DIR OR NOT UTF8PROC_LIBRARY)
  message(FATAL_ERROR "utf8proc (libutf8proc-dev) not found")
endif()
add_library(ds_dep_utf8proc INTERFACE)
target_include_directories(ds_dep_utf8proc SYSTEM INTERFACE ${UTF8PROC_INCLUDE_DIR})
target_link_libraries(ds_dep_utf8proc INTERFACE ${UTF8PROC_LIBRARY})
add_library(ds::utf8proc ALIAS ds_dep_utf8proc)

find_package(Threads REQUIRED)

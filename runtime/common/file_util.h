// Whole-file reads and crash-safe writes.
#pragma once

#include <string>
#include <string_view>

#include "runtime/common/status.h"

namespace ds {

// Reads the whole file. Errors name the path and the OS reason.
Result<std::string> read_file(const std::string& path);

// Writes `bytes` to a temporary file in the same directory, fsyncs it and
// renames it over `path`: readers see the old or the new content, never a mix.
Status write_file_atomic(const std::string& path, std::string_view bytes);

}  // namespace ds

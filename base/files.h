// Input files are checked for their type before they are opened: open() on a FIFO blocks
// until a writer comes (forever, for a mistyped path), and a directory or a device is never
// a shard, config, tokenizer or checkpoint.
#pragma once

#include <string>
#include <string_view>

namespace kd {

// InputError unless `path` (symlinks followed) is a regular file: "<path>: cannot open
// <what> (<errno text>)" when it is missing or unreadable, "<path>: not a regular file (<kind>);
// <what> must be a file" otherwise.
void require_regular_file(const std::string& path, std::string_view what);

// "a FIFO", "a directory", "a character device", ... of a stat mode.
std::string_view file_kind(unsigned mode);

}  // namespace kd

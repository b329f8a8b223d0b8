// The outputs of the commands that write files (ptq, export, import-hf, prepare): never over
// one of the command's own inputs, never over an existing file without --overwrite. Checked
// before any work, so a refused command has read and written nothing of size. (Each writer
// then writes a temporary name in the same directory and renames it.)
#pragma once

#include <string>
#include <vector>

namespace kd::cli {

// InputError when `out` is one of `inputs` (the same file by std::filesystem::equivalent:
// through a symlink, a hard link or another spelling too), or, for a directory output
// (`out_is_dir`), when an input lies inside it; --overwrite does not change this.
void refuse_input_as_output(const std::string& command, const std::string& out, const std::vector<std::string>& inputs,
                            bool out_is_dir = false);
// InputError when `out` exists (a directory: exists and is not empty) and !overwrite.
void refuse_existing_output(const std::string& command, const std::string& out, bool overwrite);

}  // namespace kd::cli

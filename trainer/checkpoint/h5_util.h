// Internal to trainer/checkpoint: RAII for HDF5 identifiers, HDF5's error stack turned into
// one line of text, and the property lists and string type every checkpoint file uses.
// (hdf5.h includes mpi.h in Debian's parallel build; nothing here needs MPI_Init.)
#pragma once

#include <hdf5.h>

#include <cstddef>
#include <optional>
#include <string>

#include "trainer/checkpoint/checkpoint.h"

namespace kd::ckpt::h5 {

// Owns one HDF5 identifier (file, group, dataset, dataspace, datatype, attribute, property
// list) and closes it with the matching H5?close.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { close(); }
  Handle(Handle&& o) noexcept : id_(o.release()) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      close();
      id_ = o.release();
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  hid_t release() {
    const hid_t id = id_;
    id_ = H5I_INVALID_HID;
    return id;
  }
  // Closes now; false when HDF5 reports a failure (for a file: the final flush failed).
  bool close();

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// Turns off HDF5's printing of its error stack to stderr (failures become our exceptions).
void silence_errors();

// The most specific entry of HDF5's current error stack as " (HDF5: func(): description)",
// or "" when the stack is empty; clears the stack.
std::string error_detail();

// File access: the default sec2 driver (or, given an MPI communicator, the MPI-IO driver
// over it: a collective file), the HDF5 1.8 file format (readable by HDF5 >= 1.8 and h5py)
// and file locking that is skipped where the file system has it disabled. For writing, also
// a strict close (it fails if an object is still open, as MPI-IO requires); reading keeps
// HDF5's default close degree, so other code may open the same file meanwhile.
Handle file_access_plist(bool for_writing, MPI_Comm comm = MPI_COMM_NULL);

// The little-endian file type and the native memory type of a stored element type, and
// the stored type of a dataset's type (nullopt: one kdtrain never writes).
hid_t file_type(DType t);
hid_t memory_type(DType t);
std::optional<DType> stored_dtype(hid_t type);

// A fixed-length UTF-8 string type of `bytes` bytes (at least 1), null-padded.
Handle string_type(std::size_t bytes);

// A scalar attribute: a fixed-length string (an empty value stored as one NUL byte), or a
// little-endian int64. false on any HDF5 failure (error_detail() says which).
bool write_string_attr(hid_t loc, const std::string& name, const std::string& value);
bool write_int64_attr(hid_t loc, const std::string& name, std::int64_t value);

}  // namespace kd::ckpt::h5

// Internal to trainer/checkpoint: reading a dataset's elements while checking them against
// the manifest's CRC-32s in the same pass, so that no reader trusts what it reads and none
// reads a file twice (a teacher can be tens of GB). The manifest has one CRC per HDF5 chunk
// (manifest.h): a read checks every chunk it touches, whole; a read that covers part of a
// chunk (a ZeRO shard's ends, a tensor-parallel column block) reads that chunk whole.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "trainer/checkpoint/checkpoint.h"
#include "trainer/checkpoint/manifest.h"

namespace kd::ckpt::checked {

// Reads elements [begin, end) of dataset `ds` (row-major `dims`, stored type `t`) into `out`,
// one HDF5 hyperslab per box of the range. False on an HDF5 read error (a Fletcher-32
// checksum mismatch among them; h5::error_detail() says which).
bool read_flat(hid_t ds, const std::vector<std::uint64_t>& dims, DType t, std::uint64_t begin, std::uint64_t end,
               void* out);

// The same, checking every block of `e` that [begin, end) touches: the blocks inside the
// range are read in place and checksummed there, the (at most two) at its ends through a
// block-sized buffer. "" when all is well, else what is wrong (the bytes concerned).
std::string read_range(hid_t ds, const manifest::Entry& e, const std::vector<std::uint64_t>& dims, DType t,
                       std::uint64_t begin, std::uint64_t end, void* out);

// Every block of `e` holding elements of [first, last), in order, read whole and checked,
// then given to `visit` (its first element, its data, its element count). For reads that
// are not one run of elements (a tensor-parallel rank's column block). "" or what is wrong.
using BlockVisitor = std::function<void(std::uint64_t first_element, const char* data, std::uint64_t elements)>;
std::string visit_blocks(hid_t ds, const manifest::Entry& e, const std::vector<std::uint64_t>& dims, DType t,
                         std::uint64_t first, std::uint64_t last, const BlockVisitor& visit);

// Every block of `e` read and checked, nothing kept: a whole-file check (verify). Contiguous
// datasets in parallel runs, each checked as it is read. "" or what is wrong.
std::string check_all(hid_t ds, const manifest::Entry& e, const std::vector<std::uint64_t>& dims, DType t);

// What a CRC mismatch of bytes [b0, b1) of a dataset is called in messages.
std::string mismatch(std::uint64_t b0, std::uint64_t b1, std::uint32_t got, std::uint32_t want);

}  // namespace kd::ckpt::checked

// The text form of a quantization format, as users write it in configs and on the
// command line:   none | <type>[:<granularity>][:sym|:asym]
//   type:         int2 … int8, fp8_e4m3, fp8_e5m2
//   granularity:  tensor (default), channel (a row of an [out, in] weight), g<size>: groups
//                 along the input dimension (g32, g64, g128 usually; any even size), token (activations: one dynamic
//                 scale per row, computed from the row at run time)
//   sym (default for integers): signed grid, zero point 0;  asym: unsigned grid + zero point.
// Examples: int8:channel, int4:g128, int4:g128:asym, int8:token, fp8_e4m3:tensor.
#pragma once

#include <string>
#include <string_view>

#include "kernels/kernels.h"

namespace kd::quant {

// Throws InputError naming `where` (the config key or flag) on an unknown type, bits out
// of 2..8, an unknown granularity or option.
kern::QuantFormat parse_format(std::string_view text, const std::string& where);
std::string to_string(const kern::QuantFormat& f);

// Checks the format against a tensor of `cols` input columns named `tensor`: a group size must divide
// cols; `token` only for activations, `channel`/groups only for weights. Throws InputError
// naming `where` and the tensor.
void check_format_for(const kern::QuantFormat& f, bool is_weight, int cols,
                      const std::string& tensor, const std::string& where);

}  // namespace kd::quant

// Reader of the .kdt fixture files written by scripts/gen_fixtures.py:
// "KDTF", u32 version (1), u32 count, then per record: u32 name length, name,
// u32 dtype (0 f32, 1 i32, 2 f64), u32 ndim, i64 dims[ndim], row-major data.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace kdtest {

struct Record {
  std::uint32_t dtype = 0;
  std::vector<std::int64_t> shape;
  std::vector<double> values;  // every dtype widened to double
  std::size_t numel() const { return values.size(); }
};

class Fixture {
 public:
  explicit Fixture(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open fixture " + path);
    char magic[4];
    in.read(magic, 4);
    if (std::memcmp(magic, "KDTF", 4) != 0) throw std::runtime_error(path + ": bad magic");
    const auto version = get<std::uint32_t>(in);
    if (version != 1) throw std::runtime_error(path + ": unknown version");
    const auto count = get<std::uint32_t>(in);
    for (std::uint32_t i = 0; i < count; ++i) {
      const auto len = get<std::uint32_t>(in);
      std::string name(len, '\0');
      in.read(name.data(), len);
      Record r;
      r.dtype = get<std::uint32_t>(in);
      const auto ndim = get<std::uint32_t>(in);
      std::size_t n = 1;
      for (std::uint32_t k = 0; k < ndim; ++k) {
        r.shape.push_back(get<std::int64_t>(in));
        n *= std::size_t(r.shape.back());
      }
      r.values.resize(n);
      for (std::size_t k = 0; k < n; ++k) {
        switch (r.dtype) {
          case 0: r.values[k] = get<float>(in); break;
          case 1: r.values[k] = get<std::int32_t>(in); break;
          case 2: r.values[k] = get<double>(in); break;
          default: throw std::runtime_error(path + ": bad dtype in " + name);
        }
      }
      if (!in) throw std::runtime_error(path + ": truncated at " + name);
      records_[name] = std::move(r);
    }
  }
  bool has(const std::string& name) const { return records_.count(name) != 0; }
  const Record& at(const std::string& name) const {
    auto it = records_.find(name);
    if (it == records_.end()) throw std::runtime_error("fixture has no record " + name);
    return it->second;
  }
  double scalar(const std::string& name) const { return at(name).values.at(0); }
  std::vector<int> ints(const std::string& name) const {
    std::vector<int> v;
    for (double x : at(name).values) v.push_back(int(x));
    return v;
  }

 private:
  template <class T>
  static T get(std::ifstream& in) {
    T v{};
    in.read(reinterpret_cast<char*>(&v), sizeof(T));
    return v;
  }
  std::map<std::string, Record> records_;
};

}  // namespace kdtest

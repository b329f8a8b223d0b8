#include "trainer/distill/teacher_cache.h"

#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "kernels/common/bf16.h"
#include "trainer/checkpoint/h5_util.h"
#include "base/errors.h"

namespace kd {

namespace fs = std::filesystem;
using ckpt::h5::Handle;

namespace {

constexpr const char* kFormat = "kdtrain-teacher-cache";
constexpr std::int64_t kVersion = 1;

using common::from_bf16;
using common::to_bf16;

[[noreturn]] void fail_write(const std::string& what) {
  throw RuntimeFailure(fmt::format("teacher cache: {}{}", what, ckpt::h5::error_detail()));
}
Handle made(hid_t id, const std::string& what) {
  if (id < 0) fail_write(what);
  return Handle(id);
}
void ok(herr_t s, const std::string& what) {
  if (s < 0) fail_write(what);
}

void put_string(hid_t loc, const char* name, const std::string& value) {
  if (!ckpt::h5::write_string_attr(loc, name, value)) fail_write(fmt::format("writing attribute {}", name));
}
void put_int(hid_t loc, const char* name, std::int64_t value) {
  if (!ckpt::h5::write_int64_attr(loc, name, value)) fail_write(fmt::format("writing attribute {}", name));
}
void put_doubles(hid_t loc, const char* name, const std::vector<double>& v) {
  const hsize_t n = v.size();
  Handle space = made(H5Screate_simple(1, &n, nullptr), "dataspace");
  Handle a = made(H5Acreate2(loc, name, H5T_IEEE_F64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), name);
  ok(H5Awrite(a.get(), H5T_NATIVE_DOUBLE, v.data()), name);
}

// Reading: a missing or malformed attribute is bad input naming the file.
struct Attrs {
  hid_t loc;
  std::string path;
  bool has(const char* name) const { return H5Aexists(loc, name) > 0; }
  Handle open(const char* name) const {
    KD_CHECK_INPUT(has(name), "{}: not a kdtrain teacher cache shard (no attribute '{}')", path, name);
    return Handle(H5Aopen(loc, name, H5P_DEFAULT));
  }
  std::string str(const char* name) const {
    Handle a = open(name);
    Handle type(H5Aget_type(a.get()));
    KD_CHECK_INPUT(H5Tget_class(type.get()) == H5T_STRING, "{}: attribute '{}' is not a string", path, name);
    std::string s(H5Tget_size(type.get()), '\0');
    KD_CHECK_INPUT(H5Aread(a.get(), type.get(), s.data()) >= 0, "{}: reading attribute '{}'", path, name);
    s.resize(std::strlen(s.c_str()));
    return s;
  }
  std::int64_t integer(const char* name) const {
    Handle a = open(name);
    std::int64_t v = 0;
    KD_CHECK_INPUT(H5Aread(a.get(), H5T_NATIVE_INT64, &v) >= 0, "{}: reading attribute '{}'", path, name);
    return v;
  }
  std::vector<double> doubles(const char* name) const {
    Handle a = open(name);
    Handle space(H5Aget_space(a.get()));
    const hssize_t n = H5Sget_simple_extent_npoints(space.get());
    KD_CHECK_INPUT(n > 0 && n < 1000, "{}: attribute '{}' has {} values", path, name, n);
    std::vector<double> v(static_cast<std::size_t>(n));
    KD_CHECK_INPUT(H5Aread(a.get(), H5T_NATIVE_DOUBLE, v.data()) >= 0, "{}: reading attribute '{}'", path, name);
    return v;
  }
};

std::uint64_t sequence_hash(const std::int32_t* tokens, int seq) {
  return fnv1a(tokens, sizeof(std::int32_t) * std::size_t(seq));
}

}  // namespace

std::uint64_t fnv1a(const void* data, std::size_t bytes, std::uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

std::uint64_t CacheIdentity::hash() const {
  const std::string text = fmt::format("teacher={}\ntokenizer={}\ndata={}\nseq_len={}\nseed={}\nkd_vocab={}\n", teacher,
                                       tokenizer, data, seq_len, seed, kd_vocab);
  return fnv1a(text.data(), text.size());
}

std::string CacheIdentity::difference(const CacheIdentity& o) const {
  auto diff = [](const char* what, const auto& a, const auto& b) {
    return a == b ? std::string() : fmt::format("{}: '{}' in the cache, '{}' in this run", what, a, b);
  };
  for (const std::string& d : {diff("teacher", teacher, o.teacher), diff("tokenizer", tokenizer, o.tokenizer),
                               diff("training data", data, o.data), diff("train.seq_len", seq_len, o.seq_len),
                               diff("data.seed (the sampler's; default train.seed)", seed, o.seed), diff("vocabulary", kd_vocab, o.kd_vocab)}) {
    if (!d.empty()) return d;
  }
  return {};
}

// ---------------------------------------------------------------- writer
struct TeacherCacheWriter::Impl {
  std::string tmp, path;
  CacheShape shape;
  int shard = 0, shards = 1;
  std::int64_t rows = 0;
  Handle file, values, indices, lse, token_hash;
};

std::string TeacherCacheWriter::shard_path(const std::string& dir, int shard, int shards) {
  return (fs::path(dir) / fmt::format("teacher-cache-{:05d}-of-{:05d}.h5", shard, shards)).string();
}

TeacherCacheWriter::TeacherCacheWriter(const std::string& dir, int shard, int shards, const CacheIdentity& id,
                                       const CacheShape& shape, const std::string& teacher_path)
    : impl_(std::make_unique<Impl>()) {
  ckpt::h5::silence_errors();
  auto& m = *impl_;
  m.shape = shape;
  m.shard = shard;
  m.shards = shards;
  KD_ASSERT(shape.sequences % shape.batch == 0, "a cache of whole micro-batches");
  const std::int64_t batches = shape.sequences / shape.batch;
  m.rows = (batches / shards + (shard < batches % shards ? 1 : 0)) * shape.batch;
  m.path = shard_path(dir, shard, shards);
  m.tmp = m.path + ".tmp";
  Handle fapl = ckpt::h5::file_access_plist(true);
  m.file = made(H5Fcreate(m.tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), "creating " + m.tmp);
  const hsize_t rows = hsize_t(m.rows), seq = hsize_t(shape.seq), k = hsize_t(shape.k),
                nt = hsize_t(shape.temperatures.size());
  auto dataset = [&](const char* name, hid_t type, std::vector<hsize_t> dims) {
    Handle space = made(H5Screate_simple(int(dims.size()), dims.data(), nullptr), "dataspace");
    return made(H5Dcreate2(m.file.get(), name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                fmt::format("creating dataset {} in {}", name, m.tmp));
  };
  m.values = dataset("values", shape.bf16 ? H5T_STD_U16LE : H5T_IEEE_F32LE, {rows, seq, k});
  m.indices = dataset("indices", H5T_STD_I32LE, {rows, seq, k});
  m.lse = dataset("lse", H5T_IEEE_F32LE, {rows, seq, nt});
  m.token_hash = dataset("token_hash", H5T_STD_U64LE, {rows});
  const hid_t f = m.file.get();
  put_string(f, "format", kFormat);
  put_int(f, "format_version", kVersion);
  put_string(f, "hash", fmt::format("{:016x}", id.hash()));
  put_string(f, "teacher_hash", id.teacher);
  put_string(f, "tokenizer_hash", id.tokenizer);
  put_string(f, "data", id.data);
  put_int(f, "seq_len", id.seq_len);
  put_int(f, "seed", id.seed);
  put_int(f, "kd_vocab", id.kd_vocab);
  put_string(f, "teacher_checkpoint", teacher_path);
  put_string(f, "values_dtype", shape.bf16 ? "bf16" : "f32");
  put_int(f, "k", shape.k);
  put_int(f, "batch", shape.batch);
  put_int(f, "sequences", shape.sequences);
  put_int(f, "shard", shard);
  put_int(f, "shards", shards);
  put_doubles(f, "temperatures", shape.temperatures);
}

TeacherCacheWriter::~TeacherCacheWriter() {
  if (impl_ && impl_->file.valid()) {  // not finished: an error; leave no partial file
    impl_->values = Handle();
    impl_->indices = Handle();
    impl_->lse = Handle();
    impl_->token_hash = Handle();
    impl_->file = Handle();
    std::remove(impl_->tmp.c_str());
  }
}

void TeacherCacheWriter::write(std::int64_t g, const float* values, const std::int32_t* indices, const float* lse,
                               const std::int32_t* tokens) {
  auto& m = *impl_;
  KD_ASSERT(g % m.shards == m.shard, "micro-batch {} is not shard {}'s", g, m.shard);
  const CacheShape& s = m.shape;
  const hsize_t row0 = hsize_t(g / m.shards) * hsize_t(s.batch), n = hsize_t(s.batch);
  auto slab = [&](const Handle& ds, hid_t mem_type, const void* data, hsize_t inner, hsize_t last) {
    Handle file_space(H5Dget_space(ds.get()));
    const std::vector<hsize_t> start{row0, 0, 0}, count{n, inner, last};
    const int rank = H5Sget_simple_extent_ndims(file_space.get());
    ok(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
       "selecting rows");
    Handle mem = made(H5Screate_simple(rank, count.data(), nullptr), "memory space");
    ok(H5Dwrite(ds.get(), mem_type, mem.get(), file_space.get(), H5P_DEFAULT, data), "writing " + m.tmp);
  };
  const std::size_t nv = std::size_t(s.batch) * s.seq * s.k;
  if (s.bf16) {
    std::vector<std::uint16_t> b(nv);
    for (std::size_t i = 0; i < nv; ++i) b[i] = to_bf16(values[i]);
    slab(m.values, H5T_NATIVE_UINT16, b.data(), hsize_t(s.seq), hsize_t(s.k));
  } else {
    slab(m.values, H5T_NATIVE_FLOAT, values, hsize_t(s.seq), hsize_t(s.k));
  }
  slab(m.indices, H5T_NATIVE_INT32, indices, hsize_t(s.seq), hsize_t(s.k));
  slab(m.lse, H5T_NATIVE_FLOAT, lse, hsize_t(s.seq), hsize_t(s.temperatures.size()));
  std::vector<std::uint64_t> h(std::size_t(s.batch));
  for (int b = 0; b < s.batch; ++b) h[std::size_t(b)] = sequence_hash(tokens + std::size_t(b) * s.seq, s.seq);
  slab(m.token_hash, H5T_NATIVE_UINT64, h.data(), 1, 1);
}

void TeacherCacheWriter::finish() {
  auto& m = *impl_;
  put_int(m.file.get(), "complete", 1);
  m.values = Handle();
  m.indices = Handle();
  m.lse = Handle();
  m.token_hash = Handle();
  if (!m.file.close()) fail_write("closing " + m.tmp);
  std::error_code ec;
  fs::rename(m.tmp, m.path, ec);
  if (ec) throw RuntimeFailure(fmt::format("teacher cache: renaming {} to {}: {}", m.tmp, m.path, ec.message()));
}

std::string CacheTargets::describe() const {
  return fmt::format("the cache {} (top-{} logits of {}, temperature {})", dir_, cache_->shape().k,
                     cache_->teacher_path(), cache_->shape().temperatures[std::size_t(t_)]);
}

// ---------------------------------------------------------------- reader
struct TeacherCache::Impl {
  struct Shard {
    std::string path;
    Handle file, values, indices, lse, token_hash;
  };
  std::vector<Shard> shards;
  CacheIdentity id;
  std::uint64_t hash = 0;
  CacheShape shape;
  std::string teacher_path;
};

TeacherCache::TeacherCache() : impl_(std::make_unique<Impl>()) {}
TeacherCache::~TeacherCache() = default;
const CacheIdentity& TeacherCache::identity() const { return impl_->id; }
std::uint64_t TeacherCache::stored_hash() const { return impl_->hash; }
const CacheShape& TeacherCache::shape() const { return impl_->shape; }
const std::string& TeacherCache::teacher_path() const { return impl_->teacher_path; }

std::unique_ptr<TeacherCache> TeacherCache::open(const std::string& dir) {
  ckpt::h5::silence_errors();
  KD_CHECK_INPUT(fs::is_directory(dir), "teacher.cache: {} is not a directory (make one with kdtrain cache-teacher)",
                 dir);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("teacher-cache-", 0) == 0 && e.path().extension() == ".h5") names.push_back(e.path().string());
  }
  std::sort(names.begin(), names.end());
  KD_CHECK_INPUT(!names.empty(), "teacher.cache: {} holds no teacher-cache-*.h5 file (an unfinished "
                 "cache-teacher leaves only .tmp files)", dir);
  std::unique_ptr<TeacherCache> c(new TeacherCache());
  auto& m = *c->impl_;
  int shards = -1;
  for (const std::string& path : names) {
    Impl::Shard s;
    s.path = path;
    Handle fapl = ckpt::h5::file_access_plist(false);
    s.file = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()));
    KD_CHECK_INPUT(s.file.valid(), "teacher.cache: {} is not a readable HDF5 file", path);
    const Attrs a{s.file.get(), path};
    KD_CHECK_INPUT(a.has("format") && a.str("format") == kFormat, "teacher.cache: {} is not a kdtrain teacher cache",
                   path);
    KD_CHECK_INPUT(a.integer("format_version") == kVersion, "teacher.cache: {} has format version {}; this kdtrain "
                   "reads {}", path, a.integer("format_version"), kVersion);
    KD_CHECK_INPUT(a.has("complete") && a.integer("complete") == 1, "teacher.cache: {} is incomplete", path);
    CacheIdentity id{a.str("teacher_hash"), a.str("tokenizer_hash"), a.str("data"), int(a.integer("seq_len")),
                     a.integer("seed"), int(a.integer("kd_vocab"))};
    CacheShape shape{int(a.integer("k")), int(a.integer("seq_len")), int(a.integer("batch")), a.integer("sequences"),
                     a.doubles("temperatures"), a.str("values_dtype") == "bf16"};
    const std::uint64_t hash = std::stoull(a.str("hash"), nullptr, 16);
    KD_CHECK_INPUT(hash == id.hash(), "teacher.cache: {}: the stored hash {:016x} does not match its identity "
                   "fields ({:016x}): the file was altered", path, hash, id.hash());
    const int sh = int(a.integer("shard")), n = int(a.integer("shards"));
    if (shards < 0) {
      shards = n;
      m.id = id;
      m.hash = hash;
      m.shape = shape;
      m.teacher_path = a.str("teacher_checkpoint");
    } else {
      KD_CHECK_INPUT(n == shards && hash == m.hash && shape.k == m.shape.k && shape.batch == m.shape.batch &&
                         shape.sequences == m.shape.sequences && shape.temperatures == m.shape.temperatures &&
                         shape.bf16 == m.shape.bf16,
                     "teacher.cache: {} does not belong with {} (another cache in the same directory?)", path,
                     m.shards.front().path);
    }
    KD_CHECK_INPUT(sh == int(m.shards.size()), "teacher.cache: {} is shard {} where shard {} of {} was expected", path,
                   sh, m.shards.size(), shards);
    auto ds = [&](const char* name) {
      Handle h(H5Dopen2(s.file.get(), name, H5P_DEFAULT));
      KD_CHECK_INPUT(h.valid(), "teacher.cache: {} has no dataset '{}'", path, name);
      return h;
    };
    s.values = ds("values");
    s.indices = ds("indices");
    s.lse = ds("lse");
    s.token_hash = ds("token_hash");
    m.shards.push_back(std::move(s));
  }
  KD_CHECK_INPUT(int(m.shards.size()) == shards, "teacher.cache: {} holds {} of the {} shards", dir, m.shards.size(),
                 shards);
  return c;
}

void TeacherCache::read(std::int64_t first, int batch, const std::int32_t* tokens, int t, TopKTargets& out) const {
  const auto& m = *impl_;
  const CacheShape& s = m.shape;
  KD_CHECK_INPUT(first >= 0 && first + batch <= s.sequences,
                 "teacher.cache holds {} sequences; this run reads sequence {} (the cache was made for fewer "
                 "train.steps · batch_size · grad_accum)", s.sequences, first + batch - 1);
  out.resize(std::size_t(batch) * s.seq, s.k);
  out.kd_vocab = m.id.kd_vocab;
  const std::size_t per_seq = std::size_t(s.seq) * s.k;
  std::vector<std::uint16_t> b16;
  // runs of sequences inside one cached micro-batch: one hyperslab read each
  for (int done = 0; done < batch;) {
    const std::int64_t i = first + done, g = i / s.batch;
    const int in_batch = int(i % s.batch), n = std::min(batch - done, s.batch - in_batch);
    const auto& sh = m.shards[std::size_t(g % std::int64_t(m.shards.size()))];
    const hsize_t row = hsize_t(g / std::int64_t(m.shards.size())) * hsize_t(s.batch) + hsize_t(in_batch);
    auto slab = [&](const Handle& ds, hid_t mem_type, void* data, std::vector<hsize_t> start,
                    std::vector<hsize_t> count) {
      Handle fsp(H5Dget_space(ds.get()));
      Handle mem(H5Screate_simple(int(count.size()), count.data(), nullptr));
      KD_CHECK_INPUT(H5Sselect_hyperslab(fsp.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) >= 0 &&
                         H5Dread(ds.get(), mem_type, mem.get(), fsp.get(), H5P_DEFAULT, data) >= 0,
                     "teacher.cache: reading sequences {}..{} from {}{}", i, i + n - 1, sh.path,
                     ckpt::h5::error_detail());
    };
    const std::size_t at = std::size_t(done);
    if (s.bf16) {
      b16.resize(std::size_t(n) * per_seq);
      slab(sh.values, H5T_NATIVE_UINT16, b16.data(), {row, 0, 0}, {hsize_t(n), hsize_t(s.seq), hsize_t(s.k)});
      for (std::size_t e = 0; e < b16.size(); ++e) out.values[at * per_seq + e] = from_bf16(b16[e]);
    } else {
      slab(sh.values, H5T_NATIVE_FLOAT, out.values.data() + at * per_seq, {row, 0, 0},
           {hsize_t(n), hsize_t(s.seq), hsize_t(s.k)});
    }
    slab(sh.indices, H5T_NATIVE_INT32, out.indices.data() + at * per_seq, {row, 0, 0},
         {hsize_t(n), hsize_t(s.seq), hsize_t(s.k)});
    slab(sh.lse, H5T_NATIVE_FLOAT, out.lse.data() + at * std::size_t(s.seq), {row, 0, hsize_t(t)},
         {hsize_t(n), hsize_t(s.seq), 1});
    std::vector<std::uint64_t> h(static_cast<std::size_t>(n));
    slab(sh.token_hash, H5T_NATIVE_UINT64, h.data(), {row}, {hsize_t(n)});
    for (int b = 0; b < n; ++b) {
      KD_CHECK_INPUT(h[std::size_t(b)] == sequence_hash(tokens + (at + std::size_t(b)) * s.seq, s.seq),
                     "teacher.cache: sequence {} in {} is not the one this run reads (another sampler, data or "
                     "batch order)", i + b, sh.path);
    }
    for (std::size_t e = 0; e < std::size_t(n) * per_seq; ++e) {
      const std::int32_t ix = out.indices[at * per_seq + e];
      KD_CHECK_INPUT(ix >= 0 && ix < m.id.kd_vocab, "teacher.cache: {}: a top-k index {} outside the vocabulary of {}",
                     sh.path, ix, m.id.kd_vocab);
    }
    done += n;
  }
}

}  // namespace kd

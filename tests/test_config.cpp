// The config schema: defaults, round trip of the effective config, overrides, docs.
#include <gtest/gtest.h>

#include "tests/support/tiny_config.h"
#include "trainer/setup/memory_estimate.h"
#include "trainer/util/aligned_buffer.h"
#include "base/errors.h"

namespace {

// The message of the InputError `f` throws; fails the test if it throws none.
template <class F>
std::string input_error(F&& f) {
  try {
    f();
  } catch (const kd::InputError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not an InputError: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no InputError";
  return "";
}

const char* kModel = "model: {vocab: 8, d_model: 8, n_layers: 1, n_heads: 2, n_kv_heads: 1, d_ff: 8}\n";

// Every float range refuses inf (and NaN): `.inf` passed `> 0` and `>= 0` before (issue 20).
TEST(Config, FloatRangesRefuseInfAndNan) {
  for (const char* kv : {"optim.eps=.inf", "optim.grad_clip=.inf", "optim.weight_decay=.inf",
                         "train.init_std=.inf", "optim.lr=.nan", "model.norm_eps=-.inf"}) {
    const std::string m = input_error([&] { kdtest::tiny_config({kv}); });
    const std::string key = std::string(kv).substr(0, std::string(kv).find('='));
    EXPECT_NE(m.find("--set " + key), std::string::npos) << kv << ": " << m;
  }
  const std::string m =
      input_error([] { kd::load_config_text(std::string(kModel) + "optim: {grad_clip: .inf}\n", "inf.yaml"); });
  EXPECT_NE(m.find("inf.yaml:2:"), std::string::npos) << m;
  EXPECT_NE(m.find("optim.grad_clip = inf is out of range"), std::string::npos) << m;
}

// A complex (non-scalar) key is an InputError naming the file, not a yaml-cpp exception.
TEST(Config, ComplexKeyIsNamed) {
  std::string m = input_error([] { kd::load_config_text(std::string(kModel) + "? [a, b]\n: 1\n", "cx.yaml"); });
  EXPECT_NE(m.find("cx.yaml:2:"), std::string::npos) << m;
  m = input_error([] { kd::load_config_text(std::string(kModel) + "train:\n  ? {x: 1}\n  : 1\n", "cx.yaml"); });
  EXPECT_NE(m.find("cx.yaml:3:"), std::string::npos) << m;
}

// A second YAML document would be silently dropped: refused, naming the file.
TEST(Config, SecondDocumentIsRefused) {
  const std::string m = input_error(
      [] { kd::load_config_text(std::string(kModel) + "---\ntrain: {steps: 3}\n", "two.yaml"); });
  EXPECT_NE(m.find("two.yaml"), std::string::npos) << m;
  EXPECT_NE(m.find("second YAML document"), std::string::npos) << m;
  // a leading `---` starts the one document
  EXPECT_NO_THROW(kd::load_config_text(std::string("---\n") + kModel, "one.yaml"));
}

// run.name is one path component: it must not lead outside run.dir.
TEST(Config, RunNameStaysInsideRunDir) {
  for (const char* name : {"../../x", "a/b", "/tmp/x", "..", "."}) {
    const std::string m = input_error([&] { kdtest::tiny_config({std::string("run.name=") + name}); });
    EXPECT_NE(m.find("run.name"), std::string::npos) << name << ": " << m;
  }
  EXPECT_EQ(kdtest::tiny_config({"run.name=ok..name"}).run.name, "ok..name");
}

// A model whose buffers cannot exist on this machine is bad input named by its sizes (2^24 x
// 2^16 floats of embedding alone are 4 TiB); an allocation that fails anyway says what and how
// big instead of a bare std::bad_alloc.
TEST(Config, ModelTooBigForTheMachineIsNamedBySize) {
  const kd::Config huge =
      kdtest::tiny_config({"model.vocab=16777216", "teacher.vocab=16777216", "model.d_model=65536"});
  const std::string m = input_error([&] { kd::check_memory_fits(huge, 1, "huge.yaml"); });
  EXPECT_NE(m.find("huge.yaml: estimated memory per rank"), std::string::npos) << m;
  EXPECT_NE(m.find("model.d_model = 65536, model.vocab = 16777216"), std::string::npos) << m;
  EXPECT_NO_THROW(kd::check_memory_fits(kdtest::tiny_config(), 1, "tiny.yaml"));
  kd::AlignedBuffer<float> b;
  try {
    b.resize(std::size_t(1) << 60, "the test's buffer");
    FAIL() << "2^60 floats were allocated";
  } catch (const kd::RuntimeFailure& e) {
    EXPECT_NE(std::string(e.what()).find("cannot allocate the test's buffer"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("GiB"), std::string::npos) << e.what();
  }
}

TEST(Config, EffectiveYamlRoundTrips) {
  const kd::Config a = kdtest::tiny_config({"distill.feature.beta=0.3", "distill.feature.layers=[[0, 1], [2, 3]]",
                                            "distill.divergence=jsd", "optim.schedule=linear"});
  const std::string text = kd::config_to_yaml(a);
  const kd::Config b = kd::load_config_text(text, "effective.yaml");
  EXPECT_EQ(kd::config_to_yaml(b), text);
  EXPECT_EQ(b.distill.divergence, kd::kern::Divergence::jensen_shannon);
  EXPECT_EQ(b.optim.schedule, kd::Schedule::linear);
  ASSERT_EQ(b.distill.feature.layers.size(), 2u);
  EXPECT_EQ(b.distill.feature.layers[1], std::make_pair(2, 3));
  EXPECT_TRUE(b.has_teacher);
  EXPECT_EQ(b.teacher.spec.d_model, 48);
}

TEST(Config, TeacherIsOptional) {
  const kd::Config c = kd::load_config_text(
      "model: {vocab: 8, d_model: 8, n_layers: 1, n_heads: 2, n_kv_heads: 1, d_ff: 8}\n", "s.yaml");
  EXPECT_FALSE(c.has_teacher);
  EXPECT_EQ(c.train.batch_size, 8);  // defaults fill the rest
}

TEST(Config, OverrideCreatesNestedKeysAndIsNamedInErrors) {
  const kd::Config c = kdtest::tiny_config({"train.seed=99"});
  EXPECT_EQ(c.train.seed, 99);
  try {
    kdtest::tiny_config({"optim.lr=-1"});
    FAIL();
  } catch (const kd::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--set optim.lr"), std::string::npos) << e.what();
  }
  EXPECT_THROW(kdtest::tiny_config({"optim.nosuch=1"}), kd::InputError);
  EXPECT_THROW(kdtest::tiny_config({"train.steps.x=1"}), kd::InputError);
}

TEST(Config, DocNamesEveryKey) {
  const std::string doc = kd::config_doc();
  for (const char* key : {"teacher.vocab", "model.tie_embeddings", "distill.alpha", "distill.temperature",
                          "distill.divergence", "distill.jsd_beta", "distill.feature.layers",
                          "optim.weight_decay", "optim.grad_clip", "optim.schedule", "train.grad_accum",
                          "train.nan_policy", "train.threads", "data.kind", "bench.steps"}) {
    EXPECT_NE(doc.find(std::string("  ") + key + " ("), std::string::npos) << key;
  }
}

}  // namespace

// The config schema: defaults, round trip of the effective config, overrides, docs.
#include <gtest/gtest.h>

#include "tests/support/tiny_config.h"
#include "base/errors.h"

namespace {

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

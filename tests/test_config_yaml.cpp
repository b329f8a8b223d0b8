// The effective config as kdtrain prints it (validate) and stores it (a checkpoint's
// /config): doubles in their shortest exact form — 0.9, not 0.90000000000000002 (issue 20) —
// and the text loads back to the same values, bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#include "base/schema.h"
#include "trainer/config/config.h"

namespace {

using kd::config::shortest_double;

TEST(ConfigYaml, DoublesPrintShortAndExact) {
  EXPECT_EQ(shortest_double(0.9), "0.9");
  EXPECT_EQ(shortest_double(1e-5), "1e-05");
  EXPECT_EQ(shortest_double(3e-4), "3e-04");  // the shorter of 0.0003 and 3e-04
  EXPECT_EQ(shortest_double(2.0), "2");
  EXPECT_EQ(shortest_double(0.1 + 0.2), "0.30000000000000004");  // not 0.3: that is another double
  EXPECT_EQ(shortest_double(std::numeric_limits<double>::infinity()), ".inf");
  EXPECT_EQ(shortest_double(-std::numeric_limits<double>::infinity()), "-.inf");
  EXPECT_EQ(shortest_double(std::nan("")), ".nan");
  for (const double x : {0.9, 1e-5, 3e-4, 0.1 + 0.2, 6.02214076e23, 5e-324, 1.7976931348623157e308}) {
    EXPECT_EQ(std::strtod(shortest_double(x).c_str(), nullptr), x) << shortest_double(x);
  }
}

TEST(ConfigYaml, EffectiveConfigRoundTripsExactly) {
  const std::string text =
      "model: {vocab: 64, d_model: 16, n_layers: 1, n_heads: 2, n_kv_heads: 1, d_ff: 32, norm_eps: 1.0e-5}\n"
      "optim: {lr: 0.0003, beta1: 0.9, beta2: 0.95, weight_decay: 0.1}\n"
      "distill: {alpha: 0.7, temperature: 1.5}\n";
  const kd::Config c = kd::load_config_text(text, "test.yaml");
  const std::string printed = kd::config_to_yaml(c);
  EXPECT_EQ(printed.find("0000000"), std::string::npos) << printed;
  EXPECT_NE(printed.find("beta1: 0.9\n"), std::string::npos) << printed;
  EXPECT_NE(printed.find("norm_eps: 1e-05\n"), std::string::npos) << printed;
  const kd::Config back = kd::load_config_text(printed, "printed.yaml");
  EXPECT_EQ(kd::config_to_yaml(back), printed);
  EXPECT_EQ(back.optim.lr, c.optim.lr);
  EXPECT_EQ(back.optim.beta2, c.optim.beta2);
  EXPECT_EQ(back.model.norm_eps, c.model.norm_eps);
  EXPECT_EQ(back.distill.alpha, c.distill.alpha);
}

}  // namespace

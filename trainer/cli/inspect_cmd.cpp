// kdtrain inspect: what a checkpoint holds.
#include <fmt/format.h>
#include <omp.h>

#include <filesystem>
#include <system_error>

#include "trainer/checkpoint/checkpoint.h"
#include "trainer/cli/commands.h"
#include "trainer/config/config.h"
#include "trainer/prune/compact.h"
#include "trainer/prune/pruner.h"
#include "trainer/setup/model_loader.h"
#include "base/errors.h"

namespace kd::cli {

int run_inspect(const std::string& path, bool verify_only) {
  const double t0 = omp_get_wtime();
  ckpt::CheckpointReader r(path);
  if (verify_only) {
    KD_CHECK_INPUT(r.has_manifest(), "{}: the checkpoint has no manifest to verify against (written by an older "
                   "kdtrain, or by export/ptq)", path);
    const std::string problem = r.verify();
    KD_CHECK_INPUT(problem.empty(), "{}: damaged: {}", path, problem);
    // the time from the open on, the read's own (scripts/torch_ckpt_ref.py sets it beside torch.load's)
    const double s = omp_get_wtime() - t0;
    std::error_code ec;
    const double mb = double(std::filesystem::file_size(path, ec)) / 1e6;
    fmt::print("{}: verified: every dataset matches the manifest ({:.1f} MB read and checked in {:.3f} s)\n", path,
               ec ? 0.0 : mb, s);
    return 0;
  }
  fmt::print("checkpoint {}\nkind: {}\n", path, r.kind());
  fmt::print("\nstate:\n");
  for (const char* k : {"step", "skipped_steps", "adam_step", "data_cursor", "tokens_seen", "time_ms", "imp_round"}) {
    if (r.has_state(k)) fmt::print("  {}: {}\n", k, r.state(k));
  }
  fmt::print("\nprovenance:\n");
  for (const auto& [k, v] : r.provenance()) fmt::print("  {}: {}\n", k, v);
  fmt::print("\ntokenizer: {}\n", r.tokenizer_json().empty() ? "none" : fmt::format("{} bytes of JSON", r.tokenizer_json().size()));
  std::size_t linear_zeros = 0, linear_total = 0;
  for (const char* g : {"model", "adam_m", "adam_v", "teacher", "quant", "quantized", "masks", "rewind"}) {
    const auto names = r.tensor_names(g);
    if (names.empty()) continue;
    std::int64_t total = 0;
    for (const auto& n : names) {
      std::int64_t c = 1;
      for (auto d : r.shape(g, n)) c *= d;
      total += c;
    }
    fmt::print("\ntensors/{}: {} tensors, {} values\n", g, names.size(), total);
    if (std::string(g) != "model" && std::string(g) != "quantized") continue;
    for (const auto& n : names) {
      std::string shape;
      for (auto d : r.shape(g, n)) {
        if (!shape.empty()) shape.push_back('x');
        shape.append(std::to_string(d));
      }
      const ckpt::DType t = r.dtype(g, n);
      std::string zeros;
      if (std::string(g) == "model" && t == ckpt::DType::f32) {
        // sparsity: exact zeros (pruned weights are stored as 0.0)
        const auto sh = r.shape(g, n);
        std::size_t numel = 1;
        for (auto d : sh) numel *= std::size_t(d);
        std::vector<float> buf(numel);
        r.read(g, n, sh, buf.data());
        std::size_t z = 0;
        for (float x : buf) z += x == 0.0f;
        if (z > 0) zeros = fmt::format("  sparsity {:.2f}%", 100.0 * double(z) / double(numel));
        if (n.find("_proj.weight") != std::string::npos) {
          linear_zeros += z;
          linear_total += numel;
        }
      }
      fmt::print("  {} {}{}{}\n", n, shape, t == ckpt::DType::f32 ? "" : std::string(" ") + ckpt::dtype_name(t), zeros);
    }
    if (std::string(g) == "model" && linear_total > 0) {
      fmt::print("  sparsity of the linear layers (q/k/v/o/gate/up/down): {:.2f}% ({} of {} weights are zero)\n",
                 100.0 * double(linear_zeros) / double(linear_total), linear_zeros, linear_total);
    }
  }
  if (!r.tensor_names("masks").empty()) {
    // whole structures the masks removed, and whether export --compact can cut them out
    const auto model = load_model(path);
    const prune::Structure st = prune::structure_of(*model->layout, load_mask(r, *model));
    const auto& s = model->config.model;
    std::string groups, neurons, removed;
    for (int l = 0, k = 0; l < s.n_layers; ++l) {
      if (k < int(st.kept_layers.size()) && int(st.kept_layers[std::size_t(k)]) == l) {
        ++k;
      } else {
        removed += fmt::format("{}{}", removed.empty() ? "" : " ", l);
      }
    }
    for (std::size_t l : st.kept_layers) {
      groups += fmt::format("{}{}", groups.empty() ? "" : " ", s.n_kv_heads - int(st.kept_groups[l].size()));
      neurons += fmt::format("{}{}", neurons.empty() ? "" : " ", s.d_ff - int(st.kept_neurons[l].size()));
    }
    fmt::print("\nstructures pruned: {} of {} blocks [{}]; per block left, KV groups removed [{}], FFN neurons removed [{}]: "
               "{}\n", s.n_layers - int(st.kept_layers.size()), s.n_layers, removed, groups, neurons,
               st.uniform ? "uniform (export --compact gives a standard Llama)"
                          : "NON-UNIFORM (export --compact refuses: no standard Llama config)");
  }
  if (r.kind() == "train" && r.has_state("step")) {
    const Config cfg = load_config_text(r.config_yaml(), path + ":/config");
    if (cfg.has_prune && cfg.prune.schedule == PruneScheduleKind::imp) {
      const prune::ImpSchedule imp = prune::imp_of(cfg.prune);
      const std::int64_t step = r.state("step");
      const int round = imp.round_done(step);
      fmt::print("\nIMP: round {} of {} done up to step {} ({} steps in all); its sparsity {:.2f}%; rewind snapshot {}\n",
                 round, cfg.prune.rounds, step, imp.total_steps(), 100.0 * imp.sparsity_of_round(round),
                 r.tensor_names("rewind").empty() ? "not taken" : "stored (group rewind)");
    }
  }
  fmt::print("\nconfig:\n{}", r.config_yaml());
  return 0;
}

}  // namespace kd::cli

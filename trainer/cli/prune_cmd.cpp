// kdtrain prune: a trained float checkpoint → a pruned checkpoint (kind "pruned"), one-shot
// (trainer/oneshot/oneshot_prune.h): the weights with their zeros and group "masks", which
// train.init_from holds through training and ptq, eval and export read.
#include <omp.h>

#include <filesystem>

#include <fmt/format.h>

#include "base/errors.h"
#include "data/shards/token_shard.h"
#include "data/token_dataset.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/cli/calibration_arg.h"
#include "trainer/cli/commands.h"
#include "trainer/cli/output_path.h"
#include "trainer/oneshot/block_sequential.h"
#include "trainer/oneshot/oneshot_prune.h"
#include "trainer/setup/model_loader.h"
#include "trainer/train/trainer.h"

namespace kd::cli {

int run_prune(const PruneOptions& o) {
  const double t0 = omp_get_wtime();
  refuse_input_as_output("prune", o.out, {o.checkpoint, o.data});
  refuse_existing_output("prune", o.out, o.overwrite);
  oneshot::OneshotPruneOptions p;
  p.method = oneshot::parse_prune_method(o.method, "--method");
  KD_CHECK_INPUT((o.sparsity >= 0) != !o.nm.empty(),
                 "prune: give one sparsity target: --sparsity F (a fraction of every row) or --nm N:M (e.g. 2:4)");
  if (!o.nm.empty()) {
    p.sparsity = oneshot::parse_nm(o.nm, "--nm");
  } else {
    KD_CHECK_INPUT(o.sparsity > 0 && o.sparsity < 1, "--sparsity {}: a fraction of every row in (0, 1)", o.sparsity);
    p.sparsity.fraction = o.sparsity;
  }
  p.obs.damp = o.damp;
  p.obs.block = o.block;
  const auto model = load_model(o.checkpoint);
  KD_CHECK_INPUT(!model->quantized, "prune: {} is quantized (kind \"quantized\"); prune the float checkpoint, then "
                 "quantize the pruned one (kdtrain ptq keeps its zeros)", o.checkpoint);
  Config cfg = model->config;
  oneshot::check_prune_for_model(p, cfg.model, o.nm.empty() ? "--sparsity" : "--nm");
  const int threads = set_threads(o.threads > 0 ? o.threads : cfg.train.threads,
                                  o.threads > 0 ? "--threads" : "train.threads");
  const int seq = o.seq_len > 0 ? o.seq_len : cfg.train.seq_len;
  std::vector<std::int32_t> tokens;
  std::string data;
  if (p.method != oneshot::PruneMethod::magnitude) {
    const CalibrationShard cal = open_calibration(o.data, *model, o.checkpoint, "prune", o.out);
    KD_CHECK_INPUT(cal.shard, "prune --method {}: needs calibration data: give --data (a token shard of the training "
                   "split; the checkpoint's data.kind names none)", o.method);
    check_calibration_length(cal, seq, o.seq_len > 0 ? "--seq-len" : "train.seq_len");
    data = cal.path;
    tokens = oneshot::calibration_tokens(cal.shard, cfg.model.vocab, o.samples, seq, o.seed, cal.key);
    fmt::print("prune --method {}: {} calibration sequences × {} tokens from {} (seed {})\n", o.method, o.samples, seq,
               data, o.seed);
  }
  std::vector<float> params(model->params.data(), model->params.data() + model->table.total());
  const oneshot::PruneReport rep =
      oneshot::prune_oneshot(p, *model->layout, model->table, params.data(), tokens, o.samples, seq, threads,
                             [](const std::string& line) { fmt::print("  {}\n", line); });
  for (const std::string& n : rep.notes) fmt::print("  note: {}\n", n);

  cfg.has_prune = false;  // the stored config describes the pruned model; the masks group is the record
  ckpt::CheckpointContents c = derived_checkpoint(ckpt::CheckpointReader(o.checkpoint), "pruned", cfg, model->step);
  c.provenance["prune_method"] = o.method;
  c.provenance["prune_target"] = p.sparsity.text();
  if (!data.empty()) {
    c.provenance["prune_calibration"] = fmt::format("{} x {} tokens of {} (seed {})", o.samples, seq, data, o.seed);
  }
  std::size_t pruned = 0, total = 0;
  for (const auto& t : model->table.tensors()) {
    c.tensors["model"].push_back({t.name, t.shape, params.data() + t.offset});
    const auto it = rep.masks.find(t.name);
    if (it == rep.masks.end()) continue;
    c.tensors["masks"].push_back({t.name, t.shape, it->second.data(), ckpt::DType::u8});
    for (const std::uint8_t k : it->second) pruned += k == 0;
    total += it->second.size();
  }
  ckpt::write_checkpoint(o.out, c);
  fmt::print("prune: {} -> {} ({} {}, {:.1f} s)\n", o.checkpoint, o.out, o.method, p.sparsity.text(), rep.seconds);
  fmt::print("  {:.2f}% of the blocks' linear weights pruned ({} of {}); file {:.2f} MiB | {:.1f} s\n",
             100.0 * double(pruned) / double(std::max<std::size_t>(total, 1)), pruned, total,
             double(std::filesystem::file_size(o.out)) / (1 << 20), omp_get_wtime() - t0);
  return 0;
}

}  // namespace kd::cli

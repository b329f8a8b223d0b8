// kdtrain export --compact: a structured-pruned checkpoint written physically smaller
// (pruned KV groups and FFN neurons cut out, shapes and config updated).
#include <filesystem>

#include <fmt/format.h>

#include "trainer/checkpoint/checkpoint.h"
#include "trainer/cli/commands.h"
#include "trainer/prune/compact.h"
#include "trainer/run/model_loader.h"
#include "trainer/util/errors.h"

namespace kd::cli {

int run_export(const ExportOptions& o) {
  KD_CHECK_INPUT(o.compact, "export: only --compact is supported so far (Hugging Face export comes with interop)");
  const auto model = load_model(o.checkpoint);
  KD_CHECK_INPUT(!model->quantized, "export --compact: {} is quantized; compact the float checkpoint, then run ptq",
                 o.checkpoint);
  ckpt::CheckpointReader r(o.checkpoint);
  const prune::Mask mask = load_mask(r, *model);
  const prune::Compacted c = prune::compact(*model->layout, model->params.data(), mask);
  KD_CHECK_INPUT(c.removed_layers > 0 || c.removed_kv_groups > 0 || c.removed_neurons > 0,
                 "export --compact: {} has no whole block, KV group or FFN neuron pruned, so nothing can be cut out "
                 "(unstructured and N:M sparsity keep the shapes; prune with criterion layers, heads or neurons)",
                 o.checkpoint);
  Config cfg = model->config;
  cfg.model = c.spec;
  cfg.has_prune = false;  // the pruned structures are gone
  ckpt::CheckpointContents out = derived_checkpoint(r, "compact", cfg, model->step);
  for (const auto& t : c.table.tensors()) out.tensors["model"].push_back({t.name, t.shape, c.params.data() + t.offset});
  ckpt::write_checkpoint(o.out, out);
  fmt::print("export --compact: {} -> {}\n  removed: {} of {} blocks; per block {} of {} KV groups ({} query heads), "
             "{} of {} FFN neurons\n"
             "  shape: n_layers {} n_heads {} n_kv_heads {} head_dim {} d_ff {} | parameters {} -> {} ({:.1f}%)\n",
             o.checkpoint, o.out, c.removed_layers, model->config.model.n_layers, c.removed_kv_groups,
             model->config.model.n_kv_heads,
             c.removed_kv_groups * model->config.model.n_heads / model->config.model.n_kv_heads, c.removed_neurons,
             model->config.model.d_ff, c.spec.n_layers, c.spec.n_heads, c.spec.n_kv_heads, c.spec.head_dim(), c.spec.d_ff,
             model->table.total(), c.table.total(), 100.0 * double(c.table.total()) / double(model->table.total()));
  return 0;
}

}  // namespace kd::cli

#include "trainer/setup/run_inputs.h"

#include <filesystem>

#include <fmt/format.h>

#include "data/token_dataset.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/setup/memory_estimate.h"
#include "trainer/setup/run_dir.h"
#include "base/errors.h"

namespace kd {

namespace fs = std::filesystem;

namespace {

data::ShardFormat shard_format(const std::string& s) {
  if (s == "kdtrain") return data::ShardFormat::kdtrain;
  if (s == "nanogpt") return data::ShardFormat::nanogpt;
  if (s == "llmc") return data::ShardFormat::llmc;
  return data::ShardFormat::auto_detect;
}

// runs/<name>: run.dir / (run.name, or the config file's stem)
std::string run_path_of(const std::string& config_file, const Config& cfg) {
  const std::string name = cfg.run.name.empty() ? fs::path(config_file).stem().string() : cfg.run.name;
  KD_CHECK_INPUT(!name.empty() && name != "." && name != "..",
                 "{}: the run name '{}' (the config file's stem) is not a directory name; set run.name", config_file,
                 name);
  return (fs::path(cfg.run.dir) / name).string();
}

// in.resume_from: the newest of the run's checkpoints that opens and whose config reads (the
// manifest, attributes and texts are checked at open); in.cfg from it. The tensors are
// checked as resume_run reads them.
void open_resume_checkpoint(const TrainCommand& cmd, RunInputs& in) {
  const std::vector<std::string> candidates = RunDir::resume_candidates(cmd.resume);
  std::vector<std::string> rejected;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const std::string& path = candidates[i];
    std::string text;
    try {
      text = ckpt::CheckpointReader(path).config_yaml();
    } catch (const InputError& e) {  // in a run's own directory, a file that is not a checkpoint is a damaged one
      rejected.push_back(damaged_checkpoint_note(path, e.what()));
      continue;
    }
    for (const std::string& r : rejected) in.resume_warnings.push_back(fmt::format("{}; falling back to {}", r, path));
    in.cfg = load_config_text(text, path + ":/config", cmd.overrides);
    in.resume_from = path;
    in.resume_fallbacks.assign(candidates.begin() + std::ptrdiff_t(i) + 1, candidates.end());
    return;
  }
  std::string why;
  for (const std::string& r : rejected) why += "\n  " + r;
  throw InputError(fmt::format("--resume {}: no checkpoint can be read:{}", cmd.resume, why));
}

}  // namespace

RunInputs gather_inputs(const TrainCommand& given, bool run_dir, int world_rank, int world_size) {
  RunInputs in;
  ckpt::check_fault_env();
  TrainCommand cmd = given;
  if (cmd.auto_resume) {
    KD_CHECK_INPUT(!cmd.config.empty() && cmd.resume.empty() && !cmd.overwrite,
                   "--auto-resume takes --config (and neither --resume nor --overwrite)");
    const std::string path = run_path_of(cmd.config, load_config(cmd.config, cmd.overrides));
    if (RunDir::latest_checkpoint(path)) {
      cmd.resume = path;
    } else {
      cmd.overwrite = true;  // nothing to continue: a directory without a checkpoint is started again
    }
  }
  if (!cmd.resume.empty()) {
    RunDir::check(cmd.resume, RunMode::resume);  // it has a checkpoint
    open_resume_checkpoint(cmd, in);
    in.run_path = cmd.resume;
    in.overwrite = false;
  } else {
    KD_CHECK_INPUT(!cmd.config.empty(), "give --config FILE (or --resume RUN_DIR)");
    in.cfg = load_config(cmd.config, cmd.overrides);
    in.run_path = run_path_of(cmd.config, in.cfg);
    in.overwrite = cmd.overwrite;
    if (run_dir) RunDir::check(in.run_path, cmd.overwrite ? RunMode::overwrite : RunMode::fresh);
  }
  in.newest_checkpoint = RunDir::latest_checkpoint(in.run_path);
  Config& cfg = in.cfg;
  if (cmd.distill) {
    KD_CHECK_INPUT(cfg.has_teacher, "distill: the config has no teacher section");
  } else {
    KD_CHECK_INPUT(!cfg.has_teacher, "train: the config has a teacher section; use `kdtrain distill`");
  }
  if (!in.resume_from && !cfg.train.init_from.empty()) {
    in.init = load_model(cfg.train.init_from);
    // a pruned start (`kdtrain prune`, or a pruning run's checkpoint) keeps its zeros
    if (!cfg.has_prune && !ckpt::CheckpointReader(cfg.train.init_from).tensor_names("masks").empty()) {
      cfg.has_prune = true;
      cfg.prune = PruneSection{};
      cfg.prune.criterion = prune::Criterion::hold;
      cfg.prune.schedule = PruneScheduleKind::oneshot;
      cfg.prune.at = 0;
      if (world_rank == 0) {
        fmt::print("train.init_from {} is pruned (it has masks): its zeros are held through training (prune.criterion "
                   "hold; give a prune section to prune otherwise)\n", cfg.train.init_from);
      }
    }
  }
  if (cfg.has_teacher && !cfg.teacher.checkpoint.empty()) {
    const int teachers = cfg.parallel.teacher_ranks;
    const bool student_rank = teachers > 0 && world_rank < world_size - teachers;
    // a tensor-parallel rank reads only its shard later (run_training)
    const bool shard_later = cfg.parallel.tensor_parallel > 1 && cmd.distill && run_dir;
    in.teacher = load_model(cfg.teacher.checkpoint, !student_rank && !shard_later);
    cfg.teacher.spec = in.teacher->config.model;
    for (const auto& [s, t] : cfg.distill.feature.layers) {
      KD_CHECK_INPUT(cfg.distill.feature.beta <= 0 || t <= cfg.teacher.spec.n_layers,
                     "distill.feature.layers: teacher hidden index {} is outside 0..{} of {}", t,
                     cfg.teacher.spec.n_layers, cfg.teacher.checkpoint);
    }
  }
  if (cfg.data.kind == DataKind::shards) {
    const auto fmt_ = shard_format(cfg.data.format);
    // a path that names nothing is the config's mistake: say which key holds it
    for (const auto& [key, path] : {std::pair{"data.train", cfg.data.train}, std::pair{"data.val", cfg.data.val}}) {
      std::error_code ec;
      KD_CHECK_INPUT(path.empty() || fs::exists(path, ec), "{}: {}: no such file", key, path);
    }
    in.train_shard = std::make_shared<const data::TokenShard>(data::TokenShard::open(cfg.data.train, fmt_));
    data::check_shard(*in.train_shard, cfg.model.vocab, cfg.train.seq_len, "training");
    if (!cfg.data.val.empty()) {
      in.val_shard = std::make_shared<const data::TokenShard>(data::TokenShard::open(cfg.data.val, fmt_));
      data::check_shard(*in.val_shard, cfg.model.vocab, cfg.train.seq_len, "validation");
    }
    std::string tok = cfg.data.tokenizer;
    const fs::path beside = fs::path(cfg.data.train).parent_path() / "tokenizer.json";
    if (tok.empty() && fs::exists(beside)) tok = beside.string();
    if (!tok.empty()) {
      in.tokenizer = data::BpeTokenizer::load(tok);
      KD_CHECK_INPUT(in.tokenizer->vocab_size() <= cfg.model.vocab,
                     "tokenizer {} has {} tokens but model.vocab is {}", tok, in.tokenizer->vocab_size(),
                     cfg.model.vocab);
      data::check_shard_tokenizer(*in.train_shard, "training", in.tokenizer->hash(), tok);
      if (in.val_shard) data::check_shard_tokenizer(*in.val_shard, "validation", in.tokenizer->hash(), tok);
    }
    // without a tokenizer file the two shards must still agree with each other
    if (in.val_shard) {
      data::check_shard_tokenizer(*in.val_shard, "validation", in.train_shard->tokenizer_hash(),
                                  "training shard " + cfg.data.train);
    }
    in.provenance["train_data_hash"] = fmt::format("{:016x}", data::shard_hash(*in.train_shard));
    if (in.val_shard) in.provenance["val_data_hash"] = fmt::format("{:016x}", data::shard_hash(*in.val_shard));
    if (in.tokenizer) in.provenance["tokenizer_hash"] = fmt::format("{:016x}", in.tokenizer->hash());
    if (in.teacher) {
      auto it = in.teacher->provenance.find("tokenizer_hash");
      if (it != in.teacher->provenance.end() && in.provenance.count("tokenizer_hash")) {
        KD_CHECK_INPUT(it->second == in.provenance["tokenizer_hash"],
                       "teacher {} was trained with another tokenizer (hash {} vs {})", cfg.teacher.checkpoint,
                       it->second, in.provenance["tokenizer_hash"]);
      }
    }
  }
  if (in.teacher) {
    const std::int64_t tok_vocab = in.tokenizer ? in.tokenizer->vocab_size()
                                   : in.teacher->tokenizer ? in.teacher->tokenizer->vocab_size() : 0;
    check_teacher_vocab(cfg.model.vocab, cfg.teacher.spec.vocab, tok_vocab, cfg.teacher.checkpoint);
  }
  // before anything is allocated: a model too big for this machine is bad input named by its
  // sizes, not a std::bad_alloc (or the OOM killer) later
  check_memory_fits(cfg, world_size, in.resume_from ? *in.resume_from : cmd.config);
  return in;
}


}  // namespace kd

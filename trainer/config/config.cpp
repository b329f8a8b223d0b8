#include "trainer/config/config.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "trainer/prune/pruner.h"
#include "trainer/quant/quant_plan.h"
#include "base/errors.h"
#include "base/files.h"

namespace kd {

void Config::validate() const {
  model.validate("model");
  // the run lives in run.dir/run.name: a name with '/' (or an absolute one, or '..') would put
  // it, and everything the run writes, somewhere else
  KD_CHECK_INPUT(run.name.empty() || (run.name.find('/') == std::string::npos && run.name != "." && run.name != ".."),
                 "run.name '{}' must be one directory name inside run.dir (no '/', not '.' or '..')", run.name);
  if (has_teacher && teacher.checkpoint.empty() && teacher.cache.empty()) {
    teacher.spec.validate("teacher");
    KD_CHECK_INPUT(teacher.spec.vocab == model.vocab,
                   "teacher.vocab ({}) must equal model.vocab ({}): the divergence compares "
                   "distributions over the same tokens",
                   teacher.spec.vocab, model.vocab);
  }
  const auto& f = distill.feature;
  if (has_teacher && !teacher.cache.empty()) {
    KD_CHECK_INPUT(distill.divergence == kern::Divergence::forward_kl,
                   "distill.divergence is {}; a teacher cache (teacher.cache) holds top-k logits, for which only "
                   "forward_kl is defined (the tail as one bucket)",
                   distill.divergence == kern::Divergence::reverse_kl ? "reverse_kl" : "jsd");
    KD_CHECK_INPUT(f.beta == 0, "distill.feature.beta > 0 needs the teacher's hidden states; a teacher cache "
                   "(teacher.cache) holds only its top-k logits");
    KD_CHECK_INPUT(distill.teacher_pretrain_steps == 0,
                   "distill.teacher_pretrain_steps: a run with teacher.cache has no teacher to pretrain");
  }
  if (has_teacher && teacher.bf16) {
    KD_CHECK_INPUT(!teacher.checkpoint.empty() && teacher.cache.empty(),
                   "teacher.bf16 needs teacher.checkpoint, and does not work with teacher.cache (no teacher to hold)");
  }
  KD_CHECK_INPUT(runtime.comm != CommKind::nccl || runtime.backend == Backend::cuda,
                 "runtime.comm: nccl needs runtime.backend: cuda (NCCL moves data between GPUs)");
  if (runtime.backend == Backend::cuda) {
    KD_CHECK_INPUT(parallel.tensor_parallel == 1 && parallel.teacher_ranks == 0 && (!has_teacher || teacher.cache.empty()),
                   "runtime.backend: cuda runs the teacher in every rank: parallel.tensor_parallel, "
                   "parallel.teacher_ranks and teacher.cache are CPU-only");
  }
  if (parallel.tensor_parallel > 1) {
    KD_CHECK_INPUT(has_teacher && !teacher.checkpoint.empty() && teacher.cache.empty() && parallel.teacher_ranks == 0,
                   "parallel.tensor_parallel > 1 needs teacher.checkpoint (the teacher it splits), and neither "
                   "teacher.cache nor parallel.teacher_ranks");
  }
  if (parallel.teacher_ranks > 0) {
    KD_CHECK_INPUT(has_teacher && !teacher.checkpoint.empty() && teacher.cache.empty(),
                   "parallel.teacher_ranks needs teacher.checkpoint (the teacher those ranks run) and no teacher.cache");
    KD_CHECK_INPUT(distill.divergence == kern::Divergence::forward_kl || parallel.teacher_sends == TeacherSends::logits,
                   "distill.divergence is {}; teacher ranks (parallel.teacher_ranks) send top-k logits, for which only "
                   "forward_kl is defined (the tail as one bucket); parallel.teacher_sends: logits sends the full logits",
                   distill.divergence == kern::Divergence::reverse_kl ? "reverse_kl" : "jsd");
    KD_CHECK_INPUT(f.beta == 0, "distill.feature.beta > 0 needs the teacher's hidden states; teacher ranks "
                   "(parallel.teacher_ranks) send only top-k logits (sending hidden states is not implemented)");
  }
  if (f.beta > 0) {
    KD_CHECK_INPUT(has_teacher, "distill.feature.beta > 0 needs a teacher section");
    KD_CHECK_INPUT(!f.layers.empty(), "distill.feature.beta > 0 needs distill.feature.layers");
    for (std::size_t k = 0; k < f.layers.size(); ++k) {
      const auto [s, t] = f.layers[k];
      KD_CHECK_INPUT(s >= 0 && s <= model.n_layers,
                     "distill.feature.layers[{}]: student hidden index {} is outside 0..{}", k, s,
                     model.n_layers);
      KD_CHECK_INPUT(!teacher.checkpoint.empty() || (t >= 0 && t <= teacher.spec.n_layers),
                     "distill.feature.layers[{}]: teacher hidden index {} is outside 0..{}", k, t,
                     teacher.spec.n_layers);
    }
  }
  if (distill.on_policy.enabled()) {
    const auto& op = distill.on_policy;
    KD_CHECK_INPUT(has_teacher, "distill.on_policy needs a teacher section (the teacher scores the student's samples)");
    KD_CHECK_INPUT(teacher.cache.empty(), "distill.on_policy: a teacher cache (teacher.cache) holds the teacher's logits "
                   "of the data's tokens only; on-policy rows need the teacher run on the student's samples");
    KD_CHECK_INPUT(parallel.teacher_ranks == 0 && parallel.tensor_parallel == 1,
                   "distill.on_policy with parallel.teacher_ranks or parallel.tensor_parallel > 1: not implemented "
                   "(teacher ranks score the data stream's tokens, and the vocabulary-parallel loss has no on-policy "
                   "rows)");
    KD_CHECK_INPUT(runtime.backend != Backend::cuda, "distill.on_policy is CPU-only for now: runtime.backend: cuda's "
                   "step has no generation yet");
    KD_CHECK_INPUT(distill.teacher_pretrain_steps == 0, "distill.on_policy with distill.teacher_pretrain_steps: give a "
                   "trained teacher");
    KD_CHECK_INPUT(op.prompt_tokens + op.max_new_tokens <= train.seq_len,
                   "distill.on_policy.prompt_tokens ({}) + max_new_tokens ({}) is longer than the context train.seq_len "
                   "({})", op.prompt_tokens, op.max_new_tokens, train.seq_len);
  }
  KD_CHECK_INPUT(optim.warmup_steps <= train.steps,
                 "optim.warmup_steps ({}) exceeds train.steps ({})", optim.warmup_steps, train.steps);
  if (data.kind == DataKind::markov) {
    KD_CHECK_INPUT(data.markov_support <= model.vocab,
                   "data.markov_support ({}) exceeds model.vocab ({})", data.markov_support,
                   model.vocab);
  }
  if (data.kind == DataKind::shards) {
    KD_CHECK_INPUT(!data.train.empty(), "data.kind is shards but data.train is not set");
  }
  if (has_quant) quant::plan_quantization(quant, model);  // throws naming the quant key and layer
  if (has_prune) prune::check_prune_section(prune, model, train.steps);
  if (has_prune && has_quant) prune::check_prune_order(prune, quant.fake_quant_start);
  KD_CHECK_INPUT(data.format == "auto" || data.format == "kdtrain" || data.format == "nanogpt" ||
                     data.format == "llmc",
                 "data.format is '{}'; allowed values: auto, kdtrain, nanogpt, llmc", data.format);
}

namespace {

// Returns the key path it set.
std::string apply_override(YAML::Node root, const std::string& kv) {
  const auto eq = kv.find('=');
  KD_CHECK_INPUT(eq != std::string::npos && eq > 0, "--set '{}': expected key.path=value", kv);
  const std::string path = kv.substr(0, eq), value = kv.substr(eq + 1);
  std::vector<std::string> keys;
  std::stringstream ss(path);
  for (std::string k; std::getline(ss, k, '.');) {
    KD_CHECK_INPUT(!k.empty(), "--set '{}': empty key in the path", kv);
    keys.push_back(k);
  }
  // yaml-cpp's operator[] returns handles; walk with reset() to descend by value.
  std::vector<YAML::Node> chain{root};
  for (std::size_t i = 0; i + 1 < keys.size(); ++i) {
    YAML::Node next = chain.back()[keys[i]];
    if (!next.IsDefined() || next.IsNull()) {
      chain.back()[keys[i]] = YAML::Node(YAML::NodeType::Map);
      next = chain.back()[keys[i]];
    }
    KD_CHECK_INPUT(next.IsMap(), "--set '{}': '{}' is not a section", kv, keys[i]);
    chain.push_back(next);
  }
  YAML::Node parsed;
  try {
    parsed = YAML::Load(value);
  } catch (const YAML::Exception& e) {
    throw InputError(fmt::format("--set '{}': value is not valid YAML: {}", kv, e.msg));
  }
  chain.back()[keys.back()] = parsed;
  return path;
}

}  // namespace

Config load_config_text(const std::string& text, const std::string& name,
                        const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    // all documents: a second one (after `---`) would otherwise be dropped without a word
    const std::vector<YAML::Node> docs = YAML::LoadAll(text);
    if (docs.size() > 1) {
      const YAML::Mark m = docs[1].Mark();
      throw InputError(fmt::format("{}{}: a second YAML document (after '---'): a config file is one document; "
                                   "merge them or remove the '---'", name,
                                   m.is_null() ? "" : fmt::format(":{}:{}", m.line + 1, m.column + 1)));
    }
    if (!docs.empty()) root = docs[0];
  } catch (const YAML::ParserException& e) {
    throw InputError(fmt::format("{}:{}:{}: YAML syntax error: {}", name, e.mark.line + 1,
                                 e.mark.column + 1, e.msg));
  }
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  KD_CHECK_INPUT(root.IsMap(), "{}: the config must be a mapping of sections", name);
  std::vector<std::string> overridden;
  for (const auto& o : overrides) overridden.push_back(apply_override(root, o));
  Config c;
  config::YamlLoader loader(name, root, "", &overridden);
  try {
    c.visit(loader);
    loader.reject_unknown();
  } catch (const YAML::Exception& e) {  // a shape of YAML the schema did not foresee: still bad input
    throw InputError(fmt::format("{}: {}", name, e.what()));
  }
  c.validate();
  return c;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  require_regular_file(path, "the config file");  // a FIFO would block the read
  std::ifstream in(path);
  KD_CHECK_INPUT(in.good(), "{}: cannot open the config file", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return load_config_text(ss.str(), path, overrides);
}

std::string config_doc() {
  Config c;
  c.has_teacher = true;
  std::string out;
  config::DocPrinter p(out);
  c.visit(p);
  return out;
}

std::string config_to_yaml(const Config& c0) {
  Config c = c0;
  YAML::Emitter e;
  e << YAML::BeginMap;
  config::YamlEmitter em(e);
  c.visit(em);
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

}  // namespace kd

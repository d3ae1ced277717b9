#include "checkpoint/model_gather.h"

#include <algorithm>
#include <list>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace spin::ckpt {

namespace {
using nlohmann::json;

// One rank's shards as rank 0 merges them: "shards", its primary ones' descriptions, and "names", the
// tensors it holds in order (the primary ones', and a replicated tensor's copies on the other TP ranks --
// not a split tensor's second copy, the last stage's tied embedding, which sits out of the model's order).
json describe(const std::vector<ShardedTensor>& local) {
  json d = {{"shards", json::array()}, {"names", json::array()}};
  for (const ShardedTensor& t : local) {
    if (t.primary || t.replicated()) d["names"].push_back(t.name);
    if (!t.primary) continue;
    d["shards"].push_back({{"name", t.name},
                           {"global", t.global_shape},
                           {"local", t.local.shape()},
                           {"dim", t.split_dim},
                           {"offset", t.offset},
                           {"length", t.length}});
  }
  return d;
}

void send_text(parallel::Communicator& mp, const std::string& text, int dest) {
  const std::int64_t size = static_cast<std::int64_t>(text.size());
  mp.send(&size, 1, dest);
  mp.send(reinterpret_cast<const std::uint8_t*>(text.data()), text.size(), dest);
}

std::string recv_text(parallel::Communicator& mp, int source) {
  std::int64_t size = 0;
  mp.recv(&size, 1, source);
  std::string text(static_cast<std::size_t>(size), '\0');
  mp.recv(reinterpret_cast<std::uint8_t*>(text.data()), text.size(), source);
  return text;
}

std::string broadcast_text(parallel::Communicator& mp, std::string text) {
  std::int64_t size = static_cast<std::int64_t>(text.size());
  mp.broadcast(&size, 1, 0);
  text.resize(static_cast<std::size_t>(size));
  mp.broadcast(reinterpret_cast<std::uint8_t*>(text.data()), text.size(), 0);
  return text;
}

// The model's order, merged from every rank's "names": a name first seen on rank r goes right before the
// next name of r's already placed (at the end if none).
std::vector<std::string> model_order(const std::vector<json>& ranks) {
  std::list<std::string> order;
  std::map<std::string, std::list<std::string>::iterator> placed;
  for (const json& d : ranks) {
    auto next = order.end();
    const json& names = d.at("names");
    for (auto m = names.rbegin(); m != names.rend(); ++m) {
      const std::string name = m->get<std::string>();
      const auto it = placed.find(name);
      next = it != placed.end() ? it->second : placed.emplace(name, order.insert(next, name)).first->second;
    }
  }
  return {order.begin(), order.end()};
}
}  // namespace

// Whether a tensor's primary shards tile it: one whole copy, or pieces along one dimension adding up to it.
bool ModelGather::tile(const std::vector<Shard>& s, const Shape& shape) {
  if (s.size() == 1 && s[0].dim < 0) return true;
  std::int64_t covered = 0;
  for (const Shard& p : s) {
    if (p.dim != s[0].dim || p.dim < 0 || static_cast<std::size_t>(p.dim) >= shape.size()) return false;
    covered += p.length;
  }
  return covered == shape[static_cast<std::size_t>(s[0].dim)];
}

ModelGather::ModelGather(const std::vector<ShardedTensor>& local, parallel::Communicator& mp) : local_(local), mp_(mp) {
  const json mine = describe(local);
  std::string agreed;  // rank 0's: {"tensors": [[name, shape], ...]} or {"error": message}
  if (mp.rank() != 0) {
    send_text(mp, mine.dump(), 0);
  } else {
    std::vector<std::string> texts(static_cast<std::size_t>(mp.size()));
    for (int r = 1; r < mp.size(); ++r) texts[static_cast<std::size_t>(r)] = recv_text(mp, r);
    try {
      std::vector<json> ranks(texts.size());
      ranks[0] = mine;
      for (std::size_t r = 1; r < ranks.size(); ++r) ranks[r] = json::parse(texts[r]);
      std::map<std::string, std::size_t> index;
      for (const std::string& name : model_order(ranks)) {
        index.emplace(name, tensors_.size());
        tensors_.push_back({name, {}});
      }
      shards_.resize(tensors_.size());
      std::vector<std::size_t> own;  // rank 0's shards: their indices in `local`
      for (std::size_t k = 0; k < local.size(); ++k) {
        if (local[k].primary) own.push_back(k);
      }
      for (std::size_t r = 0; r < ranks.size(); ++r) {
        std::size_t j = 0;
        for (const json& s : ranks[r].at("shards")) {
          const std::string name = s.at("name").get<std::string>();
          const auto it = index.find(name);
          require(it != index.end(), "tensor \"", name, "\" of rank ", r, " is in no rank's order");
          WholeTensor& t = tensors_[it->second];
          const Shape global = s.at("global").get<Shape>();
          require(t.shape.empty() || t.shape == global, "tensor \"", name, "\": ranks disagree on its shape (",
                  shape_text(t.shape), ", ", shape_text(global), ")");
          t.shape = global;
          shards_[it->second].push_back({static_cast<int>(r), r == 0 ? own[j++] : 0, s.at("local").get<Shape>(),
                                         s.at("dim").get<int>(), s.at("offset").get<std::int64_t>(),
                                         s.at("length").get<std::int64_t>()});
        }
      }
      json list = json::array();
      for (std::size_t i = 0; i < tensors_.size(); ++i) {
        const WholeTensor& t = tensors_[i];
        require(!shards_[i].empty(), "tensor \"", t.name, "\" has no primary copy on any rank");
        require(tile(shards_[i], t.shape), "tensor \"", t.name, "\": its primary shards do not add up to its ",
                shape_text(t.shape));
        list.push_back({t.name, t.shape});
      }
      agreed = json{{"tensors", list}}.dump();
    } catch (const std::exception& e) {
      agreed = json{{"error", e.what()}}.dump();
    }
  }
  const json all = json::parse(broadcast_text(mp, agreed));
  if (all.contains("error")) fail("saving the model: ", all.at("error").get<std::string>());
  if (mp.rank() != 0) {
    for (const json& t : all.at("tensors")) tensors_.push_back({t.at(0).get<std::string>(), t.at(1).get<Shape>()});
  }
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < tensors_.size(); ++i) index.emplace(tensors_[i].name, i);
  mine_.resize(tensors_.size());
  for (std::size_t k = 0; k < local.size(); ++k) {
    if (local[k].primary) mine_[index.at(local[k].name)].push_back(k);
  }
}

const float* ModelGather::pull(std::size_t i) {
  std::int64_t which = static_cast<std::int64_t>(i);
  mp_.broadcast(&which, 1, 0);
  const Shape& global = tensors_[i].shape;
  whole_.resize(static_cast<std::size_t>(shape_numel(global)));
  for (const Shard& s : shards_[i]) {
    const float* values = nullptr;
    Tensor host;
    if (s.rank == 0) {
      host = float32_on_host(local_[s.local].local);  // a copy when the model is on a GPU, or frozen in bf16
      values = host.f32();
    } else {
      received_.resize(static_cast<std::size_t>(shape_numel(s.local_shape)));
      mp_.recv(received_.data(), received_.size(), s.rank);
      values = received_.data();
    }
    // The shard's valid part into its place.
    if (s.dim < 0) {
      std::copy_n(values, whole_.size(), whole_.begin());
      continue;
    }
    const auto d = static_cast<std::size_t>(s.dim);
    std::int64_t inner = 1;
    for (std::size_t k = d + 1; k < global.size(); ++k) inner *= global[k];
    const std::int64_t outer = shape_numel(s.local_shape) / (s.local_shape[d] * inner);
    for (std::int64_t o = 0; o < outer; ++o) {
      std::copy(values + o * s.local_shape[d] * inner, values + (o * s.local_shape[d] + s.length) * inner,
                whole_.begin() + (o * global[d] + s.offset) * inner);
    }
  }
  return whole_.data();
}

void ModelGather::finish() {
  std::int64_t done = -1;
  mp_.broadcast(&done, 1, 0);
}

void ModelGather::serve() {
  for (;;) {
    std::int64_t which = -1;
    mp_.broadcast(&which, 1, 0);
    if (which < 0) return;
    for (std::size_t k : mine_[static_cast<std::size_t>(which)]) {
      const Tensor host = float32_on_host(local_[k].local);
      mp_.send(host.f32(), static_cast<std::size_t>(host.numel()), 0);
    }
  }
}

std::vector<FullTensor> gather_model(const std::vector<ShardedTensor>& local, parallel::Communicator& mp) {
  ModelGather gather(local, mp);
  if (mp.rank() != 0) {
    gather.serve();
    return {};
  }
  std::vector<FullTensor> model;
  for (std::size_t i = 0; i < gather.tensors().size(); ++i) {
    const WholeTensor& t = gather.tensors()[i];
    const float* values = gather.pull(i);
    model.push_back({t.name, t.shape, std::vector<float>(values, values + shape_numel(t.shape))});
  }
  gather.finish();
  return model;
}

}  // namespace spin::ckpt

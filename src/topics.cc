#include "topics.h"

namespace lariat::detail {

bool TopicRegistry::subscribe(lariat_conn *conn,
                              std::vector<Subscription> *subs,
                              std::string_view name) {
  for (const Subscription &s : *subs)
    if (s.topic->name == name) return false;
  auto it = topics_.find(name);
  if (it == topics_.end()) {
    auto topic = std::make_unique<Topic>();
    topic->name.assign(name.data(), name.size());
    std::string_view key = topic->name;  // the map keys on the topic's own bytes
    it = topics_.emplace(key, std::move(topic)).first;
  }
  Topic *topic = it->second.get();
  subs->reserve(subs->size() + 1);  // nothing to undo if this throws
  topic->subscribers.push_back(conn);
  subs->push_back({topic, static_cast<uint32_t>(topic->subscribers.size() - 1)});
  if (topic->subscribers.size() == 1 && on_change)
    on_change(on_change_data, topic->name, true);
  return true;
}

bool TopicRegistry::unsubscribe(lariat_conn *, std::vector<Subscription> *subs,
                                std::string_view name) {
  for (size_t i = 0; i < subs->size(); ++i) {
    if ((*subs)[i].topic->name == name) {
      remove(subs, i);
      return true;
    }
  }
  return false;
}

void TopicRegistry::unsubscribe_all(std::vector<Subscription> *subs) {
  while (!subs->empty()) remove(subs, subs->size() - 1);
  std::vector<Subscription>().swap(*subs);
}

// Swap-remove from the topic's dense array; the subscriber moved into the
// hole gets its index updated through its own list.
void TopicRegistry::remove(std::vector<Subscription> *subs, size_t at) {
  Subscription gone = (*subs)[at];
  (*subs)[at] = subs->back();
  subs->pop_back();
  Topic *topic = gone.topic;
  std::vector<lariat_conn *> &list = topic->subscribers;
  lariat_conn *moved = list.back();
  list[gone.index] = moved;
  list.pop_back();
  if (gone.index < list.size()) {
    for (Subscription &s : *subs_of(moved)) {
      if (s.topic == topic) {
        s.index = gone.index;
        break;
      }
    }
  }
  if (list.empty()) {
    if (on_change) on_change(on_change_data, topic->name, false);
    // By iterator: erasing by key would compare against the name being
    // destroyed.
    auto it = topics_.find(std::string_view(topic->name));
    topics_.erase(it);
  }
}

const Topic *TopicRegistry::find(std::string_view name) const {
  auto it = topics_.find(name);
  return it == topics_.end() ? nullptr : it->second.get();
}

}  // namespace lariat::detail

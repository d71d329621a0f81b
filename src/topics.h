// Publish/subscribe on one loop: which connections subscribe to which
// topic (exact byte strings). A topic's subscribers are a dense array, and
// each connection keeps its own small list of (topic, index) entries, so
// subscribe, unsubscribe and "every topic of this connection" (at
// terminate) are all O(its own topics) and never scan a topic's
// subscribers.
#ifndef LARIAT_TOPICS_H
#define LARIAT_TOPICS_H

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

struct lariat_conn;

namespace lariat::detail {

struct Topic;

// One subscription, as the connection sees it.
struct Subscription {
  Topic *topic;
  uint32_t index;  // in topic->subscribers
};

struct Topic {
  std::string name;
  std::vector<lariat_conn *> subscribers;
};

class TopicRegistry {
 public:
  // False when |conn| already subscribes to |name|.
  bool subscribe(lariat_conn *conn, std::vector<Subscription> *subs,
                 std::string_view name);
  // False when |conn| does not subscribe to |name|.
  bool unsubscribe(lariat_conn *conn, std::vector<Subscription> *subs,
                   std::string_view name);
  // Every subscription of |conn| (before its terminate).
  void unsubscribe_all(std::vector<Subscription> *subs);
  // nullptr when nobody subscribes.
  const Topic *find(std::string_view name) const;
  size_t topic_count() const { return topics_.size(); }

  // How the subscriber list of a connection is reached from the
  // connection; set once by the server (connection.h owns the list).
  std::vector<Subscription> *(*subs_of)(lariat_conn *) = nullptr;
  // Told when a topic gets its first subscriber on this loop (|added|) or
  // loses its last: the Redis bridge follows topics this way.
  void (*on_change)(void *data, std::string_view name, bool added) noexcept =
      nullptr;
  void *on_change_data = nullptr;
  template <typename Fn>
  void for_each_name(Fn &&fn) const {
    for (const auto &entry : topics_) fn(entry.first);
  }

 private:
  void remove(std::vector<Subscription> *subs, size_t at);
  std::unordered_map<std::string_view, std::unique_ptr<Topic>> topics_;
};

}  // namespace lariat::detail

#endif

#include "bridge.h"

#include <cstring>
#include <vector>

#include "bridge_wire.h"
#include "server.h"

namespace lariat::detail {

namespace {

void sub_cb(redisAsyncContext *ac, void *r, void *privdata) {
  static_cast<Bridge *>(privdata)->on_sub_reply(ac, static_cast<redisReply *>(r));
}

void pub_cb(redisAsyncContext *ac, void *r, void *privdata) {
  static_cast<Bridge *>(privdata)->on_pub_reply(ac, static_cast<redisReply *>(r));
}

bool is(const redisReply *r, const char *word) {
  return r->type == REDIS_REPLY_STRING && r->len == std::strlen(word) &&
         std::memcmp(r->str, word, r->len) == 0;
}

}  // namespace

Bridge::Bridge(lariat_server *primary, const RedisUrl &url, std::string prefix,
               const BridgeSettings &settings, uint64_t origin)
    : primary_(primary),
      prefix_(std::move(prefix)),
      settings_(settings),
      origin_(origin) {
  sub_.reset(new RedisLink(primary->loop, url, settings.timeouts, this, origin));
  pub_.reset(new RedisLink(primary->loop, url, settings.timeouts, this,
                           origin * 0x9e3779b97f4a7c15ull));
  uv_timer_init(primary->loop, &linger_);  // cannot fail
  linger_.data = this;
  handles_ = 3;
}

Bridge::~Bridge() = default;

void Bridge::start() {
  sub_->start();
  pub_->start();
}

// ------------------------------------------------------------- publishing

void Bridge::publish(std::string_view topic, uint8_t opcode, uint32_t flags,
                     const uint8_t *data, size_t len) {
  if (stopping_) return;
  // The number is taken whether or not the message leaves: a subscriber
  // elsewhere then sees the gap a lost publish leaves.
  auto it = out_seq_.find(std::string(topic));
  if (it == out_seq_.end()) it = out_seq_.emplace(std::string(topic), 0).first;
  uint64_t seq = ++it->second;
  if (!pub_->ready() || in_flight_ >= settings_.max_unanswered) {
    publish_failed_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::string channel = prefix_;
  channel.append(topic.data(), topic.size());
  std::string message;
  wire_encode({opcode, flags & ~LARIAT_FRAME_LOCAL, origin_, seq, data, len},
              &message);
  const char *argv[3] = {"PUBLISH", channel.data(), message.data()};
  size_t lens[3] = {7, channel.size(), message.size()};
  if (!pub_->command(pub_cb, this, 3, argv, lens, true)) {
    publish_failed_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  ++in_flight_;
}

void Bridge::on_pub_reply(redisAsyncContext *ac, redisReply *reply) {
  if (!reply || !pub_->owns(ac)) return;  // counted by lost_in_flight()
  pub_->answered();
  if (in_flight_) --in_flight_;
  if (reply->type == REDIS_REPLY_ERROR)
    publish_failed_.fetch_add(1, std::memory_order_relaxed);
  else
    published_.fetch_add(1, std::memory_order_relaxed);
}

void Bridge::lost_in_flight() {
  publish_failed_.fetch_add(in_flight_, std::memory_order_relaxed);
  in_flight_ = 0;
}

// ------------------------------------------------------------ subscribing

void Bridge::ref(std::string_view topic) {
  if (stopping_) return;
  std::string name = prefix_;
  name.append(topic.data(), topic.size());
  Channel &ch = channels_[name];
  ++ch.refs;
  ch.lingering = false;
  reconcile(name);
}

void Bridge::unref(std::string_view topic) {
  if (stopping_) return;
  std::string name = prefix_;
  name.append(topic.data(), topic.size());
  auto it = channels_.find(name);
  if (it == channels_.end() || it->second.refs == 0) return;
  if (--it->second.refs > 0) return;
  it->second.lingering = true;
  it->second.idle_since = uv_now(primary_->loop);
  arm_linger();
}

// Moves a channel one step towards what its subscribers want: one
// SUBSCRIBE or UNSUBSCRIBE in flight at a time, so hiredis' callback table
// never sees both for one channel.
void Bridge::reconcile(const std::string &name) {
  auto it = channels_.find(name);
  if (it == channels_.end()) return;
  Channel &ch = it->second;
  bool wanted = ch.refs > 0 || ch.lingering;
  if (!wanted && ch.state == kNone) {
    channels_.erase(it);
    return;
  }
  if (!sub_->ready()) return;  // link_ready() subscribes everything wanted
  const char *argv[2] = {nullptr, name.data()};
  size_t lens[2] = {0, name.size()};
  if (wanted && ch.state == kNone) {
    argv[0] = "SUBSCRIBE";
    lens[0] = 9;
    if (sub_->command(sub_cb, this, 2, argv, lens, true)) ch.state = kSubscribing;
  } else if (!wanted && ch.state == kSubscribed) {
    argv[0] = "UNSUBSCRIBE";
    lens[0] = 11;
    if (sub_->command(sub_cb, this, 2, argv, lens, true)) ch.state = kUnsubscribing;
  }
}

void Bridge::arm_linger() {
  if (stopping_) return;
  uint64_t next = UINT64_MAX;
  for (auto &entry : channels_)
    if (entry.second.lingering && entry.second.idle_since < next)
      next = entry.second.idle_since;
  if (next == UINT64_MAX) {
    uv_timer_stop(&linger_);
    return;
  }
  uint64_t due = next + settings_.linger_ms, now = uv_now(primary_->loop);
  uv_timer_start(
      &linger_, [](uv_timer_t *t) { static_cast<Bridge *>(t->data)->on_linger_timer(); },
      due > now ? due - now : 0, 0);
}

void Bridge::on_linger_timer() {
  uint64_t now = uv_now(primary_->loop);
  std::vector<std::string> expired;
  for (auto &entry : channels_) {
    Channel &ch = entry.second;
    if (ch.lingering && now - ch.idle_since >= settings_.linger_ms) {
      ch.lingering = false;
      expired.push_back(entry.first);
    }
  }
  for (const std::string &name : expired) reconcile(name);
  arm_linger();
}

void Bridge::on_sub_reply(redisAsyncContext *ac, redisReply *reply) {
  if (!reply || !sub_->owns(ac) || stopping_) return;
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
  redisReply *kind = reply->element[0], *chan = reply->element[1];
  if (chan->type != REDIS_REPLY_STRING) return;
  std::string_view channel(chan->str, chan->len);
  if (is(kind, "message")) {
    redisReply *payload = reply->element[2];
    if (payload->type == REDIS_REPLY_STRING)
      on_message(channel, reinterpret_cast<const uint8_t *>(payload->str),
                 payload->len);
    return;
  }
  bool subscribed = is(kind, "subscribe");
  if (!subscribed && !is(kind, "unsubscribe")) return;
  sub_->answered();
  std::string name(channel);
  auto it = channels_.find(name);
  if (it == channels_.end()) return;
  it->second.state = subscribed ? kSubscribed : kNone;
  if (subscribed)
    channels_subscribed_.fetch_add(1, std::memory_order_relaxed);
  else
    channels_subscribed_.fetch_sub(1, std::memory_order_relaxed);
  if (!subscribed) it->second.last_seq.clear();
  reconcile(name);
}

void Bridge::on_message(std::string_view channel, const uint8_t *p, size_t n) {
  WireMessage m;
  if (channel.substr(0, prefix_.size()) != prefix_ || !wire_decode(p, n, &m)) {
    malformed_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (m.origin == origin_) {  // our own publish, delivered locally already
    own_dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::string_view topic = channel.substr(prefix_.size());
  auto it = channels_.find(std::string(channel));
  if (it == channels_.end()) return;  // unsubscribed meanwhile
  if (m.seq != 0 && m.origin != 0) {
    uint64_t &last = it->second.last_seq[m.origin];
    // The first message of an origin sets the baseline (it may have
    // published before we subscribed); afterwards every jump is reported
    // before the message that shows it is delivered.
    if (last != 0 && m.seq > last + 1) {
      uint64_t missed = m.seq - last - 1;
      gaps_.fetch_add(1, std::memory_order_relaxed);
      missed_.fetch_add(missed, std::memory_order_relaxed);
      last = m.seq;
      emit(LARIAT_BRIDGE_GAP, 0, 0, nullptr, topic, m.origin, missed, m.seq);
    } else if (m.seq > last) {
      last = m.seq;
    }
  }
  received_.fetch_add(1, std::memory_order_relaxed);
  if (primary_->stopping) return;
  lariat_frame frame = {};
  frame.opcode = m.opcode;
  frame.flags = m.flags;
  frame.data = m.payload;
  frame.len = m.len;
  try {
    publish_to_loops(primary_, primary_, topic, frame, nullptr);
  } catch (...) {
    // Out of memory midway: the subscribers reached so far have it.
  }
}

// ------------------------------------------------------------ the links

void Bridge::link_ready(RedisLink *link) {
  int i = link_index(link);
  down_reported_[i] = false;
  if (had_fault_[i]) reconnects_.fetch_add(1, std::memory_order_relaxed);
  if (link == sub_.get()) {
    // A new connection subscribes to nothing: every wanted channel again.
    std::vector<std::string> names;
    names.reserve(channels_.size());
    for (auto &entry : channels_) names.push_back(entry.first);
    for (const std::string &name : names) reconcile(name);
  }
  connected_.store(sub_->ready() && pub_->ready(), std::memory_order_relaxed);
  emit(LARIAT_BRIDGE_UP, i, 0, nullptr, {}, 0, 0, 0);
}

void Bridge::link_down(RedisLink *link, int error, const char *detail) {
  int i = link_index(link);
  last_error_.store(error, std::memory_order_relaxed);
  connected_.store(0, std::memory_order_relaxed);
  if (link == sub_.get()) {
    for (auto it = channels_.begin(); it != channels_.end();) {
      Channel &ch = it->second;
      if (ch.state == kSubscribed || ch.state == kUnsubscribing)
        channels_subscribed_.fetch_sub(1, std::memory_order_relaxed);
      ch.state = kNone;
      if (ch.refs == 0 && !ch.lingering)
        it = channels_.erase(it);
      else
        ++it;
    }
  } else {
    lost_in_flight();
  }
  // Retries of a link that is down already are not news; the first
  // failure is (Redis down at start included).
  if (down_reported_[i]) return;
  down_reported_[i] = true;
  had_fault_[i] = true;
  faults_.fetch_add(1, std::memory_order_relaxed);
  emit(LARIAT_BRIDGE_DOWN, i, error, detail, {}, 0, 0, 0);
}

void Bridge::emit(int kind, int link, int error, const char *detail,
                  std::string_view topic, uint64_t origin, uint64_t missed,
                  uint64_t seq) {
  if (!handler_ || stopping_) return;
  lariat_bridge_event ev;
  std::memset(&ev, 0, sizeof ev);
  ev.age = 1;
  ev.kind = kind;
  ev.link = link;
  ev.error = error;
  ev.detail = detail ? detail : "";
  ev.topic = reinterpret_cast<const uint8_t *>(topic.data());
  ev.topic_len = topic.size();
  ev.origin = origin;
  ev.missed = missed;
  ev.seq = seq;
  ev.reconnects = reconnects_.load(std::memory_order_relaxed);
  handler_(primary_, &ev, handler_data_);
}

// ------------------------------------------------------------- stopping

void Bridge::stop() {
  if (stopping_) return;
  stopping_ = true;
  connected_.store(0, std::memory_order_relaxed);
  // From a timer: stop() may run inside a hiredis callback (a handler
  // that stops the server), where the context must not be freed.
  uv_timer_start(
      &linger_,
      [](uv_timer_t *t) {
        auto *b = static_cast<Bridge *>(t->data);
        b->sub_->stop(false);
        b->pub_->stop(true);  // the last publishes still leave
        uv_close(reinterpret_cast<uv_handle_t *>(&b->linger_),
                 [](uv_handle_t *h) {
                   static_cast<Bridge *>(h->data)->link_released(nullptr);
                 });
      },
      0, 0);
}

// A read holds up to 16 KiB of messages: like the replies made while
// handling one client read, their deliveries leave in one write per
// subscriber when it ends.
void Bridge::read_begin() { ++primary_->events_running; }

void Bridge::read_end() {
  if (--primary_->events_running == 0) primary_->flush_batched();
}

void Bridge::link_released(RedisLink *) {
  if (--handles_ == 0) primary_->handle_closed();
}

void Bridge::read_stats(lariat_bridge_stats *out) const {
  std::memset(out, 0, sizeof *out);
  out->origin = origin_;
  out->connected = connected_.load(std::memory_order_relaxed);
  out->last_error = last_error_.load(std::memory_order_relaxed);
  out->published = published_.load(std::memory_order_relaxed);
  out->publish_failed = publish_failed_.load(std::memory_order_relaxed);
  out->received = received_.load(std::memory_order_relaxed);
  out->own_dropped = own_dropped_.load(std::memory_order_relaxed);
  out->malformed = malformed_.load(std::memory_order_relaxed);
  out->gaps = gaps_.load(std::memory_order_relaxed);
  out->missed = missed_.load(std::memory_order_relaxed);
  out->faults = faults_.load(std::memory_order_relaxed);
  out->reconnects = reconnects_.load(std::memory_order_relaxed);
  out->channels = channels_subscribed_.load(std::memory_order_relaxed);
}

}  // namespace lariat::detail
